"""Result tables: one run's rows, and runs side by side."""

from __future__ import annotations

import pytest

from infra.core.storage import write_json
from tasks.evaluation.summary import compare_table, load_results, results_rows

NAN = float("nan")
RUN = {
    "model": "run-a",
    "step": 10,
    "perplexity": {"validation": {"perplexity": 30.5, "bits_per_byte": 1.25}},
    "tasks": {
        "arc_easy": {
            "n": 100,
            "num_fewshot": 0,
            "acc": 0.5,
            "acc_stderr": 0.05,
            "acc_norm": 0.4,
            "acc_norm_stderr": 0.049,
            "random_chance": 0.25,
        },
        "mmlu": {
            "n": 50,
            "num_fewshot": 5,
            "acc": 0.3,
            "acc_stderr": 0.06,
            "acc_subject_mean": 0.35,
            "acc_subject_mean_stderr": NAN,
            "random_chance": 0.25,
        },
        "truthfulqa_mc2": {"n": 20, "num_fewshot": 0, "mc2": 0.4, "mc2_stderr": 0.03, "random_chance": 0.22},
    },
}
BASELINE = {
    "model": "gpt2",
    "step": None,
    "perplexity": {},
    "tasks": {
        "arc_easy": {
            "n": 100,
            "num_fewshot": 0,
            "acc": 0.6,
            "acc_stderr": 0.049,
            "acc_norm": 0.55,
            "acc_norm_stderr": 0.05,
            "random_chance": 0.25,
        },
        "mmlu_letters": {"n": 50, "num_fewshot": 5, "acc": 0.28, "acc_stderr": 0.02, "random_chance": 0.25},
    },
}


def test_results_rows_label_items_and_shots():
    rows = results_rows(RUN)
    assert [(r["task"], r["metric"]) for r in rows] == [
        ("arc_easy (100 items)", "acc"),
        ("arc_easy (100 items)", "acc_norm"),
        ("mmlu (50 items, 5-shot)", "acc"),
        ("mmlu (50 items, 5-shot)", "acc_subject_mean"),
        ("truthfulqa_mc2 (20 items)", "mc2"),
        ("validation", "perplexity"),
        ("validation", "bits_per_byte"),
    ]
    assert rows[0] == {"task": "arc_easy (100 items)", "metric": "acc", "value": 0.5, "stderr": 0.05, "chance": 0.25}


def test_compare_table_puts_runs_side_by_side(tmp_path):
    run_dir = tmp_path / "run-a"
    write_json(run_dir / "eval" / "results.json", RUN)
    write_json(tmp_path / "gpt2.json", BASELINE)
    assert compare_table([run_dir, tmp_path / "gpt2.json"]).splitlines() == [
        "| task | metric | run-a | gpt2 | random chance |",
        "|---|---|---|---|---|",
        "| arc_easy | acc | 0.5000 ± 0.0500 | 0.6000 ± 0.0490 | 0.2500 |",
        "| arc_easy | acc_norm | 0.4000 ± 0.0490 | 0.5500 ± 0.0500 | 0.2500 |",
        "| mmlu | acc | 0.3000 ± 0.0600 | - | 0.2500 |",
        "| mmlu | acc_subject_mean | 0.3500 | - | 0.2500 |",  # a NaN stderr is left out
        "| truthfulqa_mc2 | mc2 | 0.4000 ± 0.0300 | - | 0.2200 |",
        "| validation | perplexity | 30.5000 | - | - |",
        "| validation | bits_per_byte | 1.2500 | - | - |",
        "| mmlu_letters | acc | - | 0.2800 ± 0.0200 | 0.2500 |",
    ]


def test_missing_results_say_how_to_make_them(tmp_path):
    (tmp_path / "run-b").mkdir()
    with pytest.raises(
        FileNotFoundError,
        match=r"no evaluation results at .*run-b/eval/results.json; run "
        r"`crucible evaluate --run-id run-b`",
    ):
        load_results(tmp_path / "run-b")
    with pytest.raises(FileNotFoundError, match="crucible evaluate-model MODEL --out"):
        load_results(tmp_path / "nothing.json")

"""Judges on tiny models built here: probabilities, figures, templates and configuration errors."""

from __future__ import annotations

import pytest
import torch

from tasks.evaluation.config import EvaluationConfig, JudgeConfig
from tasks.evaluation.judges import TEMPLATES, apply_judges, check_judges, judge_items, render, run_judge

ITEMS = [
    {"question": "What falls from clouds?", "references": ["Rain.", "Snow."], "generation": " Rain does."},
    {"question": "Is the sun cold?", "references": ["No."], "generation": " Yes, very cold indeed."},
    {"question": "Who are you?", "references": ["I have no comment."], "generation": ""},
]


def test_a_causal_judge_reads_its_next_token_odds_of_yes_against_no(hf_folder, tok):
    import transformers

    folder = hf_folder("causal_lm")
    # The fixture's 300-token vocabulary splits " yes" and " no" into " " + letters: single letters then.
    judge = JudgeConfig(name="lm", kind="causal_lm", model=str(folder), yes="Y", no="N")
    probs = judge_items(judge, ITEMS)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    yes, no = tok.encode("Y").ids[0], tok.encode("N").ids[0]
    for item, p in zip(ITEMS, probs):  # each alone, unpadded, against the batched judge
        ids = torch.tensor([tok.encode(render(judge, item)).ids])
        with torch.no_grad():
            last = model(ids).logits[0, -1]
        assert p == pytest.approx(float(torch.softmax(last[[yes, no]], -1)[0]), abs=1e-5)
    assert "Rain. | Snow." in render(judge, ITEMS[0]) and "Answer: Rain does." in render(judge, ITEMS[0])


def test_a_classifier_judge_gives_its_positive_labels_probability(hf_folder, tok):
    import transformers

    folder = hf_folder("classifier", labels=("untrue", "true"))
    by_name = judge_items(JudgeConfig(name="c", kind="classifier", model=str(folder), positive_label="true"), ITEMS)
    by_index = judge_items(JudgeConfig(name="c", kind="classifier", model=str(folder), positive_label=0), ITEMS)
    assert by_name == pytest.approx([1 - p for p in by_index], abs=1e-6)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    text = TEMPLATES[("classifier", "truthful")].format(
        question=ITEMS[1]["question"], references="No.", answer="Yes, very cold indeed."
    )
    with torch.no_grad():
        alone = torch.softmax(model(torch.tensor([tok.encode(text).ids])).logits[0], -1)[1]
    assert by_name[1] == pytest.approx(float(alone), abs=1e-5)  # padding in the batch changes nothing
    with pytest.raises(ValueError, match="positive_label 'yes' is not one of its labels"):
        judge_items(JudgeConfig(name="c", kind="classifier", model=str(folder), positive_label="yes"), ITEMS)


def test_judges_figures_land_in_their_tasks_and_items(hf_folder):
    judges = [
        JudgeConfig(name="lm", kind="causal_lm", model=str(hf_folder("causal_lm")), yes="Y", no="N"),
        JudgeConfig(
            name="info",
            kind="causal_lm",
            model=str(hf_folder("causal_lm", seed=1)),
            yes="Y",
            no="N",
            aspect="informative",
            tasks=["mine"],
        ),
    ]
    units = [
        {"task": "truthfulqa_gen", "formulation": "generate", "items": [dict(i) for i in ITEMS]},
        {"task": "mine", "formulation": "generate", "items": [dict(i) for i in ITEMS[:2]]},
    ]
    verdicts = [run_judge(j, units) for j in judges]
    assert set(verdicts[0]) == {"truthfulqa_gen", "mine"} and set(verdicts[1]) == {"mine"}
    apply_judges(units, judges, verdicts)
    tq, mine = units
    probs = [i["judges"]["lm"]["probability"] for i in tq["items"]]
    assert tq["judge_lm_truthful"] == pytest.approx(sum(p > 0.5 for p in probs) / 3)
    assert tq["judge_lm_truthful_probability"] == pytest.approx(sum(probs) / 3)
    assert "judge_info_informative" not in tq and "judge_info_informative" in mine
    assert mine["judges"]["info"]["template"] == TEMPLATES[("causal_lm", "informative")]


def test_judge_problems_are_found_before_anything_runs(tmp_path, hf_folder):
    with pytest.raises(ValueError, match=r"no config\.json") as e:
        check_judges(
            [
                JudgeConfig(name="a", kind="causal_lm", model=str(tmp_path)),
                JudgeConfig(name="b", kind="causal_lm", model=str(hf_folder()), template="{question} {gold}"),
            ]
        )
    assert "template field 'gold'" in str(e.value)
    with pytest.raises(ValueError, match="start with the same token"):
        judge_items(JudgeConfig(name="a", kind="causal_lm", model=str(hf_folder()), yes=" yes", no=" yes"), ITEMS)
    with pytest.raises(ValueError, match="not generation tasks"):
        EvaluationConfig(judges=[JudgeConfig(name="a", kind="causal_lm", model="m", tasks=["arc_easy"])])
    with pytest.raises(ValueError, match="unique"):
        EvaluationConfig(judges=[JudgeConfig(name="a", kind="causal_lm", model="m")] * 2)

"""The evaluation stage's config: refused settings and the benchmark files it reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tasks.evaluation.config import EvaluationConfig


def test_truthfulqa_is_zero_shot_only():
    with pytest.raises(ValidationError, match=r"\['truthfulqa_mc2'\] are 0-shot only"):
        EvaluationConfig(num_fewshot={"arc_easy": 5, "truthfulqa_mc2": 1})
    assert EvaluationConfig(num_fewshot={"truthfulqa_mc1": 0, "mmlu": 5}).num_fewshot["mmlu"] == 5
    with pytest.raises(ValidationError, match="num_fewshot values must be >= 0"):
        EvaluationConfig(num_fewshot={"hellaswag": -1})
    with pytest.raises(ValidationError, match="extra"):
        EvaluationConfig(fewshot=5)


def test_benchmark_files_are_the_evaluated_split_of_each_task():
    # samples_dir None: "bench" does not exist, and the bundled samples would stand in for it.
    cfg = EvaluationConfig(
        benchmarks_dir="bench", samples_dir=None, tasks=["hellaswag", "mmlu", "truthfulqa_mc1", "truthfulqa_mc2"]
    )
    assert cfg.benchmark_files() == [
        "bench/hellaswag/validation.jsonl",
        "bench/mmlu/test.jsonl",
        "bench/truthfulqa/validation.jsonl",
    ]
    assert EvaluationConfig(benchmarks_dir="b", samples_dir=None, tasks=["arc_challenge"]).benchmark_files() == [
        "b/arc_challenge/test.jsonl"
    ]
    assert EvaluationConfig(benchmarks_dir=None).benchmark_files() == []

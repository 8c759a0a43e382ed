"""Thin Prefect task wrapper around evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.evaluate import evaluate_run


@task(name="evaluate-model")
def evaluate_task(run_dir: str, cfg: EvaluationConfig) -> dict[str, Any]:
    return evaluate_run(Path(run_dir), cfg)

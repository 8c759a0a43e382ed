"""Thin Prefect task wrappers around evaluation; each (task, formulation) runs on a Ray worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from infra.core.task_markers import read_marker, write_marker
from tasks.evaluation.config import EvaluationConfig, JudgeConfig
from tasks.evaluation.evaluate import evaluate_unit, perplexities
from tasks.evaluation.harness import TaskRun
from tasks.evaluation.judges import run_judge
from tasks.transient import retry_transient


@task(name="evaluate-task", task_run_name="{run.task}-{run.formulation}", retries=2, retry_condition_fn=retry_transient)
def evaluate_unit_task(
    model_path: str, run: TaskRun, cfg: EvaluationConfig, marker: str | None = None
) -> dict[str, Any]:
    """One (task, formulation); with `marker`, a retried stage reuses a unit that finished."""
    done = read_marker(Path(marker)) if marker else None
    if done is not None:
        return done
    result = evaluate_unit(model_path, run, cfg)
    if marker:
        write_marker(Path(marker), result)
    return result


@task(name="perplexity", retries=2, retry_condition_fn=retry_transient)
def perplexity_task(model_path: str, cfg: EvaluationConfig, is_run: bool) -> dict[str, Any]:
    return perplexities(model_path, cfg, is_run)


@task(name="judge", task_run_name="judge-{judge.name}", retries=2, retry_condition_fn=retry_transient)
def judge_task(judge: JudgeConfig, generated: list[dict[str, Any]]) -> dict[str, list[float]]:
    """One judge over every generation task's items, on its own Ray worker."""
    return run_judge(judge, generated)

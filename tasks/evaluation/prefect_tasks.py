"""Thin Prefect task wrappers around evaluation; each (task, formulation) runs on a Ray worker."""
from __future__ import annotations

from typing import Any

from prefect import task

from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.evaluate import evaluate_unit, perplexities
from tasks.evaluation.harness import TaskRun
from tasks.transient import retry_transient


@task(name="evaluate-task", task_run_name="{run.task}-{run.formulation}", retries=2,
      retry_condition_fn=retry_transient)
def evaluate_unit_task(model_path: str, run: TaskRun, cfg: EvaluationConfig) -> dict[str, Any]:
    return evaluate_unit(model_path, run, cfg)


@task(name="perplexity", retries=2, retry_condition_fn=retry_transient)
def perplexity_task(model_path: str, cfg: EvaluationConfig, is_run: bool) -> dict[str, Any]:
    return perplexities(model_path, cfg, is_run)

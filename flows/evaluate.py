"""The `evaluate` flow: the benchmark tasks and perplexity on a run's model, on Ray workers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.progress import gather
from infra.core.storage import RunDir
from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.evaluate import final_step, combine, task_runs, write_results
from tasks.evaluation.prefect_tasks import evaluate_unit_task, perplexity_task
from tasks.evaluation.summary import results_rows


@flow(name="evaluate", task_runner=RayTaskRunner())
def evaluate_flow(cfg: EvaluationConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir).resolve())
    model = str(run.root)
    ppl = perplexity_task.submit(model, cfg, True)
    units = gather([evaluate_unit_task.submit(model, r, cfg) for r in task_runs(cfg)], "evaluate tasks")
    results = combine(run.root.name, units, ppl.result(), final_step(run.root))
    write_results(run.eval_results, results, units)
    create_table_artifact(key="evaluation-results", table=results_rows(results),
                          description="Benchmark scores with standard errors and random chance; perplexity")
    return {k: v for k, v in results.items() if k != "tasks"} | {
        "tasks": {k: {m: v for m, v in t.items() if m != "subjects"} for k, t in results["tasks"].items()}}

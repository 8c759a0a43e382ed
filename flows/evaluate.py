"""The `evaluate` flow: the benchmark tasks and perplexity on a run's model, on Ray workers."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.progress import gather
from flows.stages import code_version
from infra.core.storage import RunDir
from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.evaluate import combine, final_step, substituted_inputs, task_runs, write_results
from tasks.evaluation.judges import apply_judges, check_judges
from tasks.evaluation.prefect_tasks import evaluate_unit_task, judge_task, perplexity_task
from tasks.evaluation.summary import results_rows

log = logging.getLogger(__name__)


def _unit_work(run: RunDir, cfg: EvaluationConfig) -> Path:
    """Where finished units wait for the rest of a failed stage's retry: a folder per settings,
    code and model, so a unit made from anything else is never reused."""
    model = run.checkpoints / "final" / "model.pt"
    stamp = [
        cfg.model_dump(mode="json"),
        code_version("evaluate"),
        [model.stat().st_size, model.stat().st_mtime_ns] if model.is_file() else None,
    ]
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
    root = run.root / "eval" / "_units"
    for stale in (p for p in root.glob("*") if p.name != key):
        shutil.rmtree(stale, ignore_errors=True)
    return root / key


@flow(name="evaluate", task_runner=RayTaskRunner())
def evaluate_flow(cfg: EvaluationConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir).resolve())
    model = str(run.root)
    check_judges(cfg.judges)
    substituted = substituted_inputs(cfg)
    for why in substituted.values():  # a machine without the real benchmark files (a user's demo)
        log.warning("evaluation: %s; set evaluation.benchmarks_dir / text_file to the real files", why)
    work = _unit_work(run, cfg)
    ppl = perplexity_task.submit(model, cfg, True)
    units = gather(
        [
            evaluate_unit_task.submit(model, r, cfg, str(work / f"{r.task}-{r.formulation}.json"))
            for r in task_runs(cfg)
        ],
        "evaluate tasks",
    )
    generated = [u for u in units if u["formulation"] == "generate"]
    if cfg.judges and generated:  # each judge on a Ray worker of its own, over every generation
        verdicts = gather([judge_task.submit(j, generated) for j in cfg.judges], "judges")
        apply_judges(generated, cfg.judges, verdicts)
    results = combine(run.root.name, units, ppl.result(), final_step(run.root))
    if substituted:
        results["substituted_inputs"] = substituted
    write_results(run.eval_results, results, units)
    shutil.rmtree(work.parent, ignore_errors=True)  # the units are in results.json and samples/ now
    create_table_artifact(
        key="evaluation-results",
        table=results_rows(results),
        description="Benchmark scores with standard errors and random chance; perplexity",
    )
    return {k: v for k, v in results.items() if k != "tasks"} | {
        "tasks": {k: {m: v for m, v in t.items() if m != "subjects"} for k, t in results["tasks"].items()}
    }

"""The `pipeline` flow: curate -> tokenize -> train -> evaluate, each a subflow in the UI."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.curate import curate_flow
from flows.evaluate import evaluate_flow
from flows.tokenize import tokenize_flow
from flows.train import train_flow
from flows.config import PipelineConfig
from infra.core.storage import RunDir
from tasks.report import write_report


def finished_stages(run: RunDir) -> set[str]:
    """Stages whose completion file exists; each is written atomically as the stage's last act."""
    done = {"curate": run.curation_stats, "tokenize": run.manifest, "train": run.train_summary,
            "evaluate": run.eval_results}
    return {stage for stage, marker in done.items() if marker.exists()}


@flow(name="pipeline")
def pipeline_flow(cfg: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Run the stages in order; on a re-run of the same run directory, finished stages are skipped
    and training resumes from its last checkpoint."""
    run = RunDir(Path(run_dir))
    done = finished_stages(run)
    log = get_run_logger()
    if done:
        log.info("resuming run %s: skipping finished stage(s) %s", run.root.name, ", ".join(sorted(done)))
    calls = {
        "curate": lambda: curate_flow(cfg.curation, run_dir),
        "tokenize": lambda: tokenize_flow(cfg.tokenization, run_dir),
        "train": lambda: train_flow(cfg.model, cfg.training, run_dir),
        "evaluate": lambda: evaluate_flow(cfg.evaluation, run_dir),
    }
    results = {stage: ("skipped (already finished)" if stage in done else call())
               for stage, call in calls.items()}
    results["report"] = str(write_report(run.root))
    return results

"""The `pipeline` flow: the stages of flows/stage.py in order (curate -> tokenize -> train ->
evaluate), each a subflow in the UI.

A re-run or a retry (the same flow run, from the UI or `prefect flow-run retry`) skips
the stages whose key is unchanged (flows/stages.py) and redoes the rest; training resumes
from its newest valid checkpoint.

No `from __future__ import annotations` here: Prefect builds the deployment's parameter
model from this module's annotations, and strings it cannot resolve fail every served run.
"""

import os
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows import lineage, stages
from flows.cluster import check_cluster, connect_ray
from flows.config import PipelineConfig, dump_config
from flows.run_lock import run_lock
from flows.stage import PIPELINE, skips
from flows.stopping import stop_before_prefect
from infra.core.storage import RunDir, write_text
from tasks.report import write_report
from tasks.tracking.pipeline_tracker import PipelineTracker
from tasks.tracking.run_record import active_record


def run_links(run: RunDir) -> str:
    tensorboard = run.root / "tensorboard"
    tb = (
        f"`tensorboard --logdir {tensorboard}`"
        if tensorboard.is_dir()
        else "not written (set training.tensorboard=true)"
    )
    tracked = active_record(run.root)
    mlflow = "" if tracked is None else f"**MLflow run:** {_markdown_link(tracked.url())}\n\n"
    return (
        f"**Run directory:** `{run.root}` ([file link](file://{run.root}))\n\n"
        f"**Report:** `{run.report}`\n\n**Metrics:** `{run.metrics}`\n\n**TensorBoard:** {tb}\n\n{mlflow}"
        f"**Resume after a failure:** `crucible resume {run.root}`"
    )


def _markdown_link(url: str) -> str:
    return f"[{url}]({url})" if url.startswith(("http://", "https://")) else url


RUNS_ROOT_ENV = "CRUCIBLE_RUNS_ROOT"


def confine(path: Path, what: str) -> Path:
    """`path`, resolved, if it lies under the folder an operator confined runs to
    (CRUCIBLE_RUNS_ROOT, which `crucible serve` sets to its runs_dir); a deployment's
    parameters can be edited by anyone who reaches its Prefect API, and would otherwise name
    any folder on the host to write to."""
    path = path.resolve()
    if not (confined := os.environ.get(RUNS_ROOT_ENV)):
        return path
    root = Path(confined).resolve()
    if path != root and root not in path.parents:
        raise ValueError(
            f"{what} {path} is outside {root}, the folder this deployment's runs are confined "
            f"to ({RUNS_ROOT_ENV}); drop the parameter, or serve with --allow-any-run-dir"
        )
    return path


def _run_dir(cfg: PipelineConfig, run_dir: str | None) -> RunDir:
    if run_dir:
        return RunDir(confine(Path(run_dir), "run_dir"))
    from prefect.runtime import deployment, flow_run

    # A served run gets a directory of its own, named after its flow run: two runs of a
    # deployment never share one, and a retry of the same flow run finds its own again.
    # The id's random tail: its head is a timestamp, alike in runs created together.
    name = cfg.run_id or f"{deployment.name or 'pipeline'}-{flow_run.name}-{str(flow_run.id)[-8:]}"
    return RunDir(confine(Path(cfg.runs_dir) / name, "the run directory"))


@flow(name="pipeline")
def pipeline_flow(cfg: PipelineConfig, run_dir: str | None = None) -> dict[str, Any]:
    """Run the stages in order, skipping those already made from the same inputs, config
    section and code."""
    from prefect.runtime import deployment, flow_run

    run = _run_dir(cfg, run_dir)
    log = get_run_logger()
    run.root.mkdir(parents=True, exist_ok=True)
    with run_lock(run):
        cfg = lineage.resolve(cfg, run, deployment.name)
        actions = stages.plan(run, cfg)  # refuses, before anything runs, a change under a trained model
        # Written only once the plan holds: config.yaml describes what this run directory makes.
        write_text(run.config, dump_config(cfg.model_copy(update={"run_id": run.root.name})))
        flow_run_id = str(flow_run.id) if flow_run.id else None
        lineage.record(run, cfg, deployment.name, flow_run_id)
        # Before training starts: its rank 0 finds the MLflow run in the run directory.
        tracker = PipelineTracker.open(cfg.tracking.mlflow, run, cfg.runs_dir, cfg.model_dump(mode="json"), flow_run_id)
        log.info("run %s: %s", run.root.name, "; ".join(f"{s}: {a}" for s, a in actions.items()))
        keys = stages.expected_keys(cfg)
        results: dict[str, Any] = {}
        checked = False
        # Under a Prefect runner, a SIGTERM (Cancel in the UI) lets training save a checkpoint first.
        with stop_before_prefect(run, cfg.training.stop_grace_s), tracker.running():
            for stage in PIPELINE:
                if skips(actions[stage.name]):
                    results[stage.name] = "skipped (unchanged since it finished)"
                else:
                    if not checked:  # once, for the first stage to run
                        connect_ray(cfg.runtime, os.environ.get("PREFECT_API_URL"))
                        check_cluster(run.root)  # every node sees the run directory and reaches Prefect
                        checked = True
                    call = partial(stage.load_flow(), *stage.arguments(cfg, str(run.root)))
                    results[stage.name] = stages.run_stage(run, keys[stage.name], call)
                tracker.stage(stage.name, run, "skipped" if skips(actions[stage.name]) else "ran")
                if (why := stage.stop_after(cfg, run)) is not None:
                    log.info("run %s: %s; the later stages have nothing to do", run.root.name, why)
                    tracker.finish(run)
                    return {**results, "run_dir": str(run.root), "nothing_new": True}
        results["report"] = str(write_report(run.root))
        tracker.finish(run)
        results["run_dir"] = str(run.root)
        create_markdown_artifact(
            key="run-directory",
            markdown=run_links(run),
            description="where this run's files are, and how to browse its metrics",
        )
    return results

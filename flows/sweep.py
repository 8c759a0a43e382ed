"""The `sweep` flow: curate and tokenize once, train a grid of model shapes and budgets on the
same shards (each run a `train` subflow, as many at once as the Ray cluster has room for),
then fit scaling laws to their final validation losses (tasks/scaling/).

A re-run skips the stages and the grid runs already finished; a grid run stopped half-way
resumes from its checkpoint like any training.
"""

from __future__ import annotations

import base64
import contextvars
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows import stages
from flows.config import PipelineConfig, dump_config
from flows.stage import PIPELINE, SHARD_STAGES, get_stage, skips
from infra.core.storage import RunDir, read_json, write_json, write_text
from tasks.scaling.grid import GridPoint, plan_grid, run_configs
from tasks.scaling.records import GRID, RESULT, SHARED, grid_dir, runs_table, write_sweep


class SweepRunsFailed(RuntimeError):
    """Some grid runs failed; the others finished and were fitted."""


@flow(name="sweep")
def sweep_flow(cfg: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Train the grid of cfg.sweep on this run's shards and fit the scaling laws."""
    run = RunDir(Path(run_dir).resolve())
    log = get_run_logger()
    # First: the folder marks the run directory as a sweep's, which `crucible resume` continues as one.
    (run.root / GRID).mkdir(parents=True, exist_ok=True)
    make_shards(cfg, run)
    manifest = read_json(run.manifest)
    points = plan_grid(cfg.sweep, cfg.model, cfg.training, manifest["vocab_size"], manifest["seq_len"])
    todo = [p for p in points if p.skipped is None]
    if len(todo) < 2:
        raise ValueError(
            f"the sweep has {len(todo)} runnable grid point(s) of {len(points)}: widen sweep.budgets or "
            f"sweep.tokens, or lower sweep.min_steps"
        )
    parallel = cfg.sweep.parallel_runs or cluster_room(cfg)
    log.info(
        "sweep %s: %d runs (%d left out), %d at a time", run.root.name, len(todo), len(points) - len(todo), parallel
    )
    # The largest first: the small ones then fill the gaps at the end instead of leaving one
    # long run alone on the cluster.
    results = train_grid(cfg, run, sorted(todo, key=lambda p: -p.flops), parallel)
    sweep_json = write_sweep(run, cfg.sweep, points, results)
    from tasks.scaling.report import write_sweep_report  # scipy and matplotlib: once the runs are done

    report = write_sweep_report(run.root)
    create_table_artifact(key="sweep-runs", table=runs_table(read_json(sweep_json)), description="the sweep's runs")
    create_markdown_artifact(
        key="sweep-report", markdown=inline_plots(report), description="scaling-law fits of the sweep"
    )
    failed = [r for r in results if r.get("status") != "finished"]
    if failed:
        raise SweepRunsFailed(
            f"{len(failed)} of {len(results)} grid runs failed ({', '.join(r['name'] for r in failed)}): the fit "
            f"used the others; see {run.root / GRID}/<run>/ and `crucible resume` retries them"
        )
    return {"run_dir": str(run.root), "sweep": str(sweep_json), "report": str(report), "runs": len(results)}


def inline_plots(report: Path) -> str:
    """The report's markdown with its plots inside it: the Prefect UI shows images only from
    public URLs or data, not from files beside the report."""
    from tasks.scaling.report import FRONTIER_PLOT, ISOFLOP_PLOT

    text = report.read_text()
    for name in (ISOFLOP_PLOT, FRONTIER_PLOT):
        if (report.parent / name).is_file():
            data = base64.b64encode((report.parent / name).read_bytes()).decode()
            text = text.replace(f"]({name})", f"](data:image/png;base64,{data})")
    return text


def make_shards(cfg: PipelineConfig, run: RunDir) -> None:
    """Curate and tokenize as the pipeline does, skipping what is unchanged since it finished."""
    actions = stages.plan(run, cfg, SHARD_STAGES)
    get_run_logger().info("sweep %s: %s", run.root.name, "; ".join(f"{s}: {a}" for s, a in actions.items()))
    write_text(run.config, dump_config(cfg))
    keys = stages.expected_keys(cfg)
    for stage in PIPELINE:
        if stage.name in SHARD_STAGES and not skips(actions[stage.name]):
            stages.run_stage(run, keys[stage.name], partial(stage.load_flow(), *stage.arguments(cfg, str(run.root))))


def cluster_room(cfg: PipelineConfig) -> int:
    """How many trainings of training.num_workers workers the connected cluster fits at once."""
    import ray

    from tasks.training.checks import resolve_device

    t = cfg.training
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0))
    if resolve_device(t, gpus) == "cuda":  # as each training decides its device (trainer.plan_job)
        return max(1, int(gpus // (t.num_workers * t.gpus_per_worker)))
    return max(1, int(float(resources.get("CPU", 1)) // (t.num_workers * t.cpus_per_worker)))


def train_grid(cfg: PipelineConfig, run: RunDir, points: list[GridPoint], parallel: int) -> list[dict[str, Any]]:
    """Each point's result, training the unfinished ones `parallel` at a time."""
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sweep") as pool:
        # Each thread runs its subflow in a copy of this flow's context: Prefect finds its parent there.
        futures = [pool.submit(contextvars.copy_context().run, train_point, cfg, run, p) for p in points]
        return [f.result() for f in futures]


def train_point(cfg: PipelineConfig, run: RunDir, point: GridPoint) -> dict[str, Any]:
    """Train one grid run (or resume it) and measure its loss on the whole validation split."""
    from flows.train import train_flow
    from tasks.scaling.records import measure_point

    folder = grid_dir(run, point.name)
    if (folder / RESULT).is_file():
        return read_json(folder / RESULT)
    if run.stop_request.exists():  # the sweep was asked to stop: start no more runs
        return {**point.to_json(), "status": "not started", "error": "the sweep was stopped before this run"}
    link_shared(run, folder)
    model_cfg, training = run_configs(point, cfg.model, cfg.training, cfg.sweep)
    point_cfg = cfg.model_copy(update={"model": model_cfg, "training": training})
    write_text(folder / "config.yaml", dump_config(point_cfg))
    started = time.monotonic()
    try:
        # The arguments the pipeline's train stage gets (init_from, the eval tasks' benchmarks).
        arguments = get_stage("train").arguments(point_cfg, str(folder))
        train_flow.with_options(flow_run_name=f"{run.root.name}-{point.name}")(*arguments)
    except Exception as exc:  # one failed run does not stop the others; the flow fails at the end
        get_run_logger().error("grid run %s failed: %s: %s", point.name, type(exc).__name__, exc)
        return {**point.to_json(), "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
    result = measure_point(run, folder, point, training, time.monotonic() - started)
    write_json(folder / RESULT, result)
    done = sum((f / RESULT).is_file() for f in (run.root / GRID).iterdir())
    get_run_logger().info(
        "grid run %s finished: validation loss %.4f after %d steps (%d grid runs finished)",
        point.name, result["val_loss"], point.steps, done,
    )  # fmt: skip
    return result


def link_shared(run: RunDir, folder: Path) -> None:
    """The grid run reads the sweep's shards and tokenizer through links: one copy on disk. Its
    stop request is a link to the sweep's too: SIGTERM or Cancel of `crucible sweep` writes that
    one, and every grid run's ranks then save a checkpoint and stop."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*SHARED, run.stop_request.name):
        link = folder / name
        if not link.is_symlink():
            os.symlink(os.path.relpath(run.root / name, folder), link)

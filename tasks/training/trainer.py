"""Launch the training loop on Ray Train workers (one DeepSpeed rank per worker).

Everything that can be checked is checked here, in the driver, before a worker starts:
the config's cross-field rules against the cluster's resources, and a resume's config
against the newest checkpoint's. The device comes from the cluster, not the driver.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from infra.core.node import node_identity, node_label
from infra.core.storage import RunDir, read_json, sha256_file, write_json
from infra.core.task_markers import changed_keys
from models.config import ModelConfig
from tasks.training.checks import TrainingConfigError, check_training, resolve_device
from tasks.training.config import TrainingConfig
from tasks.training.deepspeed_config import resolve_precision
from tasks.training.elastic import TrainEvents, alive_nodes, choose_world, last_step, read_events
from tasks.training.eval_tasks import check_eval_tasks
from tasks.training.loop import TrainJob
from tasks.training.resumable_changes import check_resumable
from tasks.transient import is_transient

log = logging.getLogger(__name__)


class StopRequested(RuntimeError):
    """The command running this training asked it to stop (SIGTERM, Cancel): it saved and stopped."""


def ray_train_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point: Ray has set up the process group (gloo on CPU, NCCL on GPU)."""
    import ray.train
    import ray.train.torch
    import torch

    from tasks.training.loop import Faults, Preempted, RankContext, train

    job = TrainJob(**config["job"])
    ctx = ray.train.get_context()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # Ray limits CUDA_VISIBLE_DEVICES per worker; DeepSpeed picks its device by LOCAL_RANK,
        # which must then index the visible devices, not the node's (ray-project/ray#37212).
        os.environ["LOCAL_RANK"] = str(device.index or 0)
    rank = ctx.get_world_rank()
    try:
        train(
            RankContext(
                rank,
                ctx.get_world_size(),
                device,
                node_label(node_identity()),
                report=ray.train.report,
            ),
            job,
            Faults.drill(job.run_dir),
        )
    except Preempted as stopped:  # asked to stop, checkpoint saved: not a failure to retry or trace
        if rank == 0:
            log.warning("%s", stopped)


def check_init_from(run: RunDir, model_cfg: ModelConfig, seq_len: int, init_from: Path) -> None:
    """Continued pre-training needs the earlier model's shape and its tokenizer."""
    meta_path = init_from / "model.json"
    if not meta_path.is_file():
        raise TrainingConfigError(
            f"continued pre-training: {init_from} holds no final model (model.json); "
            f"the previous run must have finished training"
        )
    meta = read_json(meta_path)
    problems = [
        f"model.{k}: {a!r} there, {b!r} here"
        for k, (a, b) in changed_keys(meta["model"], model_cfg.model_dump(mode="json")).items()
    ]
    manifest = read_json(run.manifest)
    if meta["vocab_size"] != manifest["vocab_size"] or meta["seq_len"] != seq_len:
        problems.append(
            f"vocabulary/context {meta['vocab_size']}/{meta['seq_len']} there, {manifest['vocab_size']}/{seq_len} here"
        )
    earlier_tokenizer = init_from.parents[1] / "tokenizer" / "tokenizer.json"
    if earlier_tokenizer.is_file() and sha256_file(earlier_tokenizer) != sha256_file(run.tokenizer):
        problems.append("another tokenizer: set tokenization.tokenizer_path to the earlier run's tokenizer.json")
    if problems:
        raise TrainingConfigError(f"cannot continue pre-training from {init_from}:\n  - " + "\n  - ".join(problems))


def plan_job(
    run: RunDir,
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    cluster_gpus: float,
    init_from: Path | None = None,
    benchmarks_dir: str | None = None,
) -> TrainJob:
    """Resolve device and precision and run every check that needs no worker. `benchmarks_dir`:
    the evaluation stage's benchmark files, which training.eval_tasks read."""
    if not run.manifest.is_file():
        raise FileNotFoundError(f"no token shards in {run.shards}; run `crucible tokenize` for this run first")
    if init_from is not None:
        check_init_from(run, model_cfg, read_json(run.manifest)["seq_len"], init_from)
    device = resolve_device(cfg, cluster_gpus)
    # 'auto' on GPUs stays 'auto' until the ranks see their GPUs (loop.setup resolves it).
    precision = "auto" if device == "cuda" and cfg.precision == "auto" else resolve_precision(cfg.precision, device)
    check_training(cfg, model_cfg, device, None if precision == "auto" else precision, cluster_gpus)
    check_eval_tasks(cfg, benchmarks_dir, run)
    if cfg.num_workers == 1 and cfg.zero_stage > 0:
        log.warning(
            "ZeRO stage %d on one rank partitions nothing and cost 18%% of the tokens/s of stage 0 "
            "here (benchmarks/training_overhead.py); set training.zero_stage=0 unless the run will "
            "resume on more ranks",
            cfg.zero_stage,
        )
    check_resumable(run, cfg, model_cfg, precision if device == "cpu" else None)
    return TrainJob(
        str(run.root),
        cfg.model_dump(mode="json"),
        model_cfg.model_dump(mode="json"),
        device,
        precision,
        str(init_from) if init_from else None,
        benchmarks_dir,
    )


def run_training(
    run_dir: Path,
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    init_from: Path | None = None,
    benchmarks_dir: str | None = None,
) -> dict[str, Any]:
    """Train (or resume from the run's newest valid checkpoint) and return the training summary.
    `init_from`: a final model folder whose weights a fresh start begins from; `benchmarks_dir`:
    the folder training.eval_tasks read. A lost rank or host is handled by tasks/training/elastic.py."""
    import ray

    run = RunDir(Path(run_dir).resolve())
    gpus = float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0
    events = TrainEvents(run)
    failures = 0
    while True:
        job = plan_job(run, model_cfg, cfg, gpus, init_from, benchmarks_dir)
        resources = {"CPU": cfg.cpus_per_worker, **({"GPU": cfg.gpus_per_worker} if job.device == "cuda" else {})}
        before = alive_nodes()
        try:
            _fit(run, job, cfg, resources, failures)
            break
        except Exception as exc:
            if not is_transient(exc) or failures >= cfg.max_failures:
                raise
            failures += 1
            lost = sorted(set(before.values()) - set(alive_nodes().values()))
            step = last_step(run)
            events.record(
                "ranks_lost",
                f"the ranks failed after step {step} ({type(exc).__name__}); "
                f"restart {failures} of {cfg.max_failures}" + (f"; node(s) gone: {', '.join(lost)}" if lost else ""),
                step=step,
                world=cfg.num_workers,
                nodes_gone=lost,
                error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
            )

            def acceptable(smaller: TrainingConfig) -> list[str]:
                try:
                    plan_job(run, model_cfg, smaller, gpus, init_from, benchmarks_dir)
                    return []
                except TrainingConfigError as err:
                    return [str(err)]

            cfg = choose_world(cfg, resources, run, events, acceptable)
    if run.stop_request.exists():  # the ranks saved and stopped as the command asked
        raise StopRequested(
            f"training stopped as asked after step {last_step(run)}, its checkpoint saved; "
            f"`crucible resume {run.root}` continues it"
        )
    summary = read_json(run.train_summary)
    happened = read_events(run.train_events)  # this run's, across retries and resumes
    if happened:
        summary["events"] = happened
        write_json(run.train_summary, summary)
    return summary


def _fit(run: RunDir, job: TrainJob, cfg: TrainingConfig, resources: dict[str, float], attempt: int) -> None:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    log.info("training on %d %s worker(s) in %s", cfg.num_workers, job.device, job.precision)
    trainer = TorchTrainer(
        ray_train_worker,
        train_loop_config={"job": asdict(job)},
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=job.device == "cuda", resources_per_worker=resources
        ),
        # Restarts are run_training's (elastic.py): it may wait for a host or change the world.
        run_config=RunConfig(
            name=f"train-{attempt}", storage_path=str(run.ray_storage), failure_config=FailureConfig(max_failures=0)
        ),
    )
    trainer.fit()

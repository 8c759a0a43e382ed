"""Cross-field checks of the training config, run in the driver before any worker starts.

Each problem names the fix; all are gathered and raised together.
"""
from __future__ import annotations

from models.config import ModelConfig
from tasks.training.batch import batch_problems, global_batch
from tasks.training.config import TrainingConfig


class TrainingConfigError(ValueError):
    """A training setting that cannot run as given; the message lists every problem."""


def resolve_device(cfg: TrainingConfig, cluster_gpus: float) -> str:
    """cuda when the cluster (not the driver) has a GPU share for every worker, else cpu."""
    if cfg.device != "auto":
        return cfg.device
    return "cuda" if cluster_gpus >= cfg.num_workers * cfg.gpus_per_worker else "cpu"


def check_training(cfg: TrainingConfig, model: ModelConfig, device: str | None = None,
                   precision: str | None = None, cluster_gpus: float | None = None) -> None:
    """Raise TrainingConfigError listing every problem of running `cfg` on `device`.

    Without a device (the CLI, before Ray has said what the cluster holds), only the checks
    that hold on any device run; with an explicit training.device, those too."""
    if device is None and cfg.device != "auto":
        device = cfg.device
    if precision is None and cfg.precision != "auto":
        precision = cfg.precision
    problems: list[str] = []
    p, t = cfg.parallel.pipeline, cfg.parallel.tensor
    if p > 1 or t > 1:
        problems.append(f"training.parallel (pipeline {p}, tensor {t}): pipeline and tensor "
                        f"parallelism are not available yet; set both to 1 (data parallelism "
                        f"with ZeRO is)")
    if cfg.num_workers % (p * t):
        problems.append(f"training.num_workers ({cfg.num_workers}) must be a multiple of "
                        f"pipeline x tensor ({p * t})")
    if p > 1 and cfg.zero_stage >= 2:
        problems.append(f"ZeRO stage {cfg.zero_stage} partitions gradients, which pipeline "
                        f"parallelism cannot use; set training.zero_stage=1 (or 0)")
    dp = max(1, cfg.num_workers // (p * t))
    problems += batch_problems(cfg, dp, global_batch(cfg, dp))
    if precision == "fp16" and device == "cpu":
        problems.append("fp16 needs a GPU (DeepSpeed refuses it on CPU); set training.precision "
                        "to bf16 or fp32, or train on cuda")
    if precision in ("bf16", "fp16") and cfg.zero_stage == 0 and p == 1:
        problems.append(f"{precision} without ZeRO runs DeepSpeed's fp16-style optimizer, which "
                        f"accumulates and all-reduces gradients in {precision} and writes no fp32 master "
                        f"weights to its checkpoints; set training.zero_stage=1, or precision=fp32")
    if cfg.offload_optimizer and cfg.zero_stage == 0:
        problems.append("training.offload_optimizer needs ZeRO; set training.zero_stage to 1, 2 or 3")
    if cfg.offload_params and cfg.zero_stage != 3:
        problems.append("training.offload_params needs ZeRO-3 (only stage 3 partitions the "
                        "parameters); set training.zero_stage=3")
    if (cfg.offload_optimizer or cfg.offload_params) and device == "cpu":
        problems.append("offload moves state from GPU to CPU memory, and the ranks already run on "
                        "cpu; set training.offload_optimizer and offload_params to false")
    if device == "cuda" and cluster_gpus is not None and cluster_gpus < cfg.num_workers * cfg.gpus_per_worker:
        problems.append(f"training.device is cuda but the cluster has {cluster_gpus:g} GPU(s) for "
                        f"{cfg.num_workers} worker(s) x {cfg.gpus_per_worker:g}; lower "
                        f"training.num_workers or gpus_per_worker, or set training.device=cpu")
    if cfg.zero_stage == 3 and cfg.compile:
        problems.append("training.compile with ZeRO-3 is not supported here (its parameter "
                        "gathering hooks break the graph); set training.compile=false or zero_stage<=2")
    heads = model.n_head
    if t > 1 and (heads % t or model.kv_heads % t):
        problems.append(f"tensor parallelism {t} must divide the heads ({heads}) and key/value heads "
                        f"({model.kv_heads})")
    if problems:
        raise TrainingConfigError("training cannot start:\n  - " + "\n  - ".join(problems))

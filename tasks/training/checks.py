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


def check_training(
    cfg: TrainingConfig,
    model: ModelConfig,
    device: str | None = None,
    precision: str | None = None,
    cluster_gpus: float | None = None,
) -> None:
    """Raise TrainingConfigError listing every problem of running `cfg` on `device`.

    Without a device (the CLI, before Ray has said what the cluster holds), only the checks
    that hold on any device run; with an explicit training.device, those too."""
    if device is None and cfg.device != "auto":
        device = cfg.device
    if precision is None and cfg.precision != "auto":
        precision = cfg.precision
    problems: list[str] = []
    p, t = cfg.parallel.pipeline, cfg.parallel.tensor
    problems += layout_problems(cfg, model)
    dp = max(1, cfg.num_workers // (p * t))
    problems += batch_problems(cfg, dp, global_batch(cfg, dp))
    if precision == "fp16" and device == "cpu":
        problems.append(
            "fp16 needs a GPU (DeepSpeed refuses it on CPU); set training.precision to bf16 or fp32, or train on cuda"
        )
    if precision in ("bf16", "fp16") and cfg.zero_stage == 0 and p == 1:
        problems.append(
            f"{precision} without ZeRO runs DeepSpeed's fp16-style optimizer, which "
            f"accumulates and all-reduces gradients in {precision} and writes no fp32 master "
            f"weights to its checkpoints; set training.zero_stage=1, or precision=fp32"
        )
    if cfg.offload_optimizer and cfg.zero_stage == 0:
        problems.append("training.offload_optimizer needs ZeRO; set training.zero_stage to 1, 2 or 3")
    if cfg.offload_params and cfg.zero_stage != 3:
        problems.append(
            "training.offload_params needs ZeRO-3 (only stage 3 partitions the parameters); set training.zero_stage=3"
        )
    if (cfg.offload_optimizer or cfg.offload_params) and device == "cpu":
        problems.append(
            "offload moves state from GPU to CPU memory, and the ranks already run on "
            "cpu; set training.offload_optimizer and offload_params to false"
        )
    if device == "cuda" and cluster_gpus is not None and cluster_gpus < cfg.num_workers * cfg.gpus_per_worker:
        problems.append(
            f"training.device is cuda but the cluster has {cluster_gpus:g} GPU(s) for "
            f"{cfg.num_workers} worker(s) x {cfg.gpus_per_worker:g}; lower "
            f"training.num_workers or gpus_per_worker, or set training.device=cpu"
        )
    if cfg.zero_stage == 3 and cfg.compile:
        problems.append(
            "training.compile with ZeRO-3 is not supported here (its parameter "
            "gathering hooks break the graph); set training.compile=false or zero_stage<=2"
        )
    problems += muon_problems(cfg)
    if problems:
        raise TrainingConfigError("training cannot start:\n  - " + "\n  - ".join(problems))


def muon_problems(cfg: TrainingConfig) -> list[str]:
    """Why training.optimizer=muon cannot run with the rest of `cfg`, each with the fix."""
    if cfg.optimizer != "muon":
        return []
    problems = []
    if cfg.zero_stage == 0:
        problems.append(
            "training.optimizer=muon with zero_stage=0: DeepSpeed's engine without ZeRO runs Muon inside the "
            "optimizer step and, as Muon does not clip, records no gradient norm, so a NaN gradient would go "
            "unseen; set training.zero_stage to 1, 2 or 3 (ZeRO-1 costs nothing on one rank), or "
            "training.optimizer=adamw"
        )
    if cfg.parallel.pipeline * cfg.parallel.tensor > 1:
        problems.append(
            "training.optimizer=muon with pipeline or tensor parallelism is not supported: each tensor shard "
            "would be orthogonalised alone (Newton-Schulz of a shard is not a shard of Newton-Schulz), and the "
            "pipeline engine is not set up for Muon here; set training.parallel.pipeline=1 and tensor=1, or "
            "training.optimizer=adamw"
        )
    if cfg.min_workers < cfg.num_workers:
        problems.append(
            f"training.optimizer=muon with min_workers ({cfg.min_workers}) below num_workers "
            f"({cfg.num_workers}): continuing on fewer ranks converts the ZeRO checkpoint to a universal one, "
            f"and DeepSpeed's conversion knows AdamW's moments only, not Muon's momentum; set "
            f"training.min_workers={cfg.num_workers}, or training.optimizer=adamw"
        )
    return problems


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _eval_task_problems(cfg: TrainingConfig) -> list[str]:
    """training.eval_tasks under pipeline or tensor parallelism, where no rank holds the whole model."""
    if not cfg.eval_tasks:
        return []
    return [
        "training.eval_tasks with pipeline or tensor parallelism is not supported (the benchmarks are "
        "scored by the whole model's packed forward pass on every rank); set training.eval_tasks: [] and "
        "score the final model with the evaluate stage, or train with parallel.pipeline=1 and tensor=1"
    ]


def layout_problems(cfg: TrainingConfig, model: ModelConfig) -> list[str]:
    """Why training.parallel cannot split `model` over training.num_workers ranks, each with the fix."""
    p, t = cfg.parallel.pipeline, cfg.parallel.tensor
    problems = []
    if cfg.num_workers % (p * t):
        problems.append(
            f"training.num_workers ({cfg.num_workers}) must be a multiple of pipeline x tensor "
            f"({p} x {t} = {p * t}): the data-parallel degree is num_workers / (pipeline x tensor); "
            f"set num_workers to {p * t * max(1, cfg.num_workers // (p * t))} "
            f"or {p * t * (cfg.num_workers // (p * t) + 1)}"
        )
    if model.n_layer % p:
        problems.append(
            f"training.parallel.pipeline ({p}) must divide model.n_layer ({model.n_layer}) so every "
            f"stage holds as many blocks; use one of {_divisors(model.n_layer)}"
        )
    widths = {
        "model.n_head": model.n_head,
        "the key/value heads (model.n_kv_head)": model.kv_heads,
        "the MLP width (d_model x mlp_ratio)": model.mlp_hidden,
    }
    bad = [f"{name} ({n})" for name, n in widths.items() if n % t]
    if t > 1 and bad:
        fits = [d for d in _divisors(model.n_head) if model.kv_heads % d == 0 and model.mlp_hidden % d == 0]
        problems.append(
            f"training.parallel.tensor ({t}) must divide {', '.join(bad)}: each shard takes whole "
            f"heads and an equal slice of the MLP; use one of {fits}"
        )
    if p * t > 1:
        if cfg.zero_stage >= 2:
            problems.append(
                f"ZeRO stage {cfg.zero_stage} partitions gradients, which DeepSpeed's pipeline engine "
                f"(which also runs tensor parallelism here) cannot use; set training.zero_stage=1, which "
                f"still shards the optimizer states over the data-parallel replicas"
            )
        elif cfg.zero_stage == 0:
            problems.append(
                "training.zero_stage=0 with pipeline or tensor parallelism: DeepSpeed's gradient "
                "clipping without ZeRO counts the unsplit parameters of the first stage only, so the "
                "clipped step would differ from a 1-rank run's; set training.zero_stage=1"
            )
        if cfg.compile:
            problems.append(
                "training.compile with pipeline or tensor parallelism is not supported here (the "
                "stages' send/receive and the shards' all-reduces break the graph); set "
                "training.compile=false"
            )
        if cfg.offload_params:
            problems.append("training.offload_params needs ZeRO-3, which pipeline/tensor parallelism cannot use")
        problems += _eval_task_problems(cfg)
    dropout = cfg.dropout if cfg.dropout is not None else model.dropout
    if t > 1 and dropout > 0:
        problems.append(
            f"dropout {dropout} with tensor parallelism: the tensor ranks share one random stream (the "
            f"activations they hold whole must drop alike), so attention dropout would draw the same "
            f"mask for every rank's heads; set training.dropout=0 (large-model pretraining uses none)"
        )
    return problems

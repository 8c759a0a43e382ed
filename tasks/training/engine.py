"""The DeepSpeed engine around the single-device model: ZeRO-3 construction, the seeded
initialisation, activation checkpointing and compilation. Nothing here knows of Ray."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from models.config import ModelConfig
from models.gpt import GPT
from tasks.training.config import TrainingConfig
from tasks.training.schedule import make_scheduler


def skip_unused_cpu_ops(device: str) -> None:
    """On CPU, keep DeepSpeed from compiling its shared-memory all-reduce op (one to three
    minutes of g++ at the first start on each machine). That op serves only
    `inference_all_reduce`, DeepSpeed's inference tensor parallelism, which training never
    calls: gradients and every collective here go through torch.distributed over gloo."""
    if device != "cpu":
        return
    import deepspeed.ops

    compatible = getattr(deepspeed.ops, "__compatible_ops__", None)  # probed once, read by the op loader
    if isinstance(compatible, dict):
        compatible["deepspeed_shm_comm"] = False


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only; biases, norms and embeddings are left undecayed (GPT-2/3 practice)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        dims = len(getattr(p, "ds_shape", p.shape))  # ZeRO-3 parameters are stored flat
        (decay if dims >= 2 and "emb" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_model(
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    vocab_size: int,
    seq_len: int,
    ds_config: dict[str, Any],
    rank: int,
    device: str = "cpu",
    initial: dict[str, torch.Tensor] | None = None,
) -> GPT:
    """The model with the run's seeded initialisation (or the `initial` weights of an earlier
    model: continued pre-training), partitioned at construction under ZeRO-3.

    Every path sets the weights one parameter at a time, so a ZeRO-3 run (where rank 0 sets
    each gathered parameter and the others receive it) starts from exactly the weights of a
    1-rank run.
    """
    import deepspeed

    if cfg.dropout is not None:
        model_cfg = model_cfg.model_copy(update={"dropout": cfg.dropout})
    zero3 = cfg.zero_stage == 3
    if zero3:
        # zero.Init reads the world from DeepSpeed's own communicator: wrap the caller's
        # process group in it first (deepspeed.initialize would do it only later).
        deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")
        # Parameters are partitioned as each module is built, so no rank ever holds the whole
        # model: the way to train a model larger than one rank's memory.
        with deepspeed.zero.Init(config_dict_or_path=ds_config):
            model = GPT(model_cfg, vocab_size, seq_len)
    else:
        model = GPT(model_cfg, vocab_size, seq_len)
    torch.manual_seed(cfg.seed)

    def set_weights(name: str, p: torch.nn.Parameter) -> None:
        if initial is None:
            model.init_parameter(name, p)
        else:
            with torch.no_grad():
                p.copy_(initial[name].to(p.dtype))

    for name, p in model.named_parameters():
        if zero3:
            with deepspeed.zero.GatheredParameters([p], modifier_rank=0):
                if rank == 0:
                    set_weights(name, p)
        else:
            set_weights(name, p)
    if zero3:
        # The fused loss reads the head's (tied) weight outside the head's own forward.
        deepspeed.zero.register_external_parameter(model, model.head.weight)
    model.checkpoint_activations = cfg.activation_checkpointing
    return model


def build_engine(model: GPT, cfg: TrainingConfig, ds_config: dict[str, Any]):
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=param_groups(model, cfg.weight_decay),
        config=ds_config,
        lr_scheduler=partial(make_scheduler, cfg=cfg),  # built on the optimizer DeepSpeed creates
    )
    if cfg.zero_stage == 0 and engine.dp_world_size == 1:
        # One rank has nothing to all-reduce, but DeepSpeed would still copy every gradient
        # into its buckets and back (measured: backward 1.45 s -> 1.95 s for GPT-2 124M on CPU).
        engine.enable_backward_allreduce = False
    keep_clip_norm(engine)
    if cfg.compile:
        engine.compile()
    return engine


def keep_clip_norm(engine: Any) -> None:
    """Record the gradient norm where DeepSpeed computes it and throws it away: an fp32 engine
    without ZeRO clips by `clip_grad_norm_` but keeps no norm, so `get_global_grad_norm()`
    was None on every step and a NaN or Inf gradient went unseen by the spike detector until
    it reached the loss. Gradients are all-reduced before the step, so the norm is the same
    on every rank (the model-parallel `mpu`, if any, is passed on as DeepSpeed does)."""
    if engine.fp16_enabled() or engine.bfloat16_enabled() or engine.zero_optimization():
        return  # their optimizers keep the norm themselves
    from deepspeed.runtime.utils import clip_grad_norm_

    def clip_and_keep() -> None:
        engine._global_grad_norm = clip_grad_norm_(
            parameters=engine.module.parameters(), max_norm=engine.gradient_clipping(), mpu=engine.mpu
        )

    engine.clip_fp32_gradients = clip_and_keep

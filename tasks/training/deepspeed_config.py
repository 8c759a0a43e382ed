"""The DeepSpeed JSON, derived from the training config in one place (never kept beside it)."""

from __future__ import annotations

from typing import Any

import torch

from tasks.training.config import TrainingConfig


def resolve_precision(requested: str, device: str) -> str:
    """Turn 'auto' into the fastest precision `device` computes natively.

    On a CPU without native bf16 (AVX2 only), PyTorch emulates bf16 matmuls: about 20x slower
    than fp32 for the demo model's forward+backward (benchmarks/precision_cpu.py). Every GPU
    that DeepSpeed's fused kernels target since Ampere has bf16; older ones get fp16.
    """
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16" if not torch.cuda.is_available() or torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def deepspeed_config(
    cfg: TrainingConfig, world_size: int, precision: str, device: str, grad_accum: int, load_universal: bool = False
) -> dict[str, Any]:
    """`precision` and `device` are the resolved ones; `grad_accum` the step's accumulation
    (from `tasks.training.batch.BatchPlan`, which also absorbs a change of world size)."""
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage > 0:
        zero.update(reduce_bucket_size=cfg.zero_bucket_size, allgather_bucket_size=cfg.zero_bucket_size)
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device == "cuda"}
    if cfg.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": device == "cuda"}
    if cfg.zero_stage == 3:
        # Every parameter is partitioned, small ones included, so the memory per rank is what
        # the stage promises; the final fp32 weights are gathered from the checkpoint files.
        zero["stage3_param_persistence_threshold"] = 0
        if cfg.optimizer == "muon":
            # ZeRO-3 orthogonalises whole gathered gradients and refuses its reduce-scatter
            # ("Muon and reduce scatter cannot be used together", zero/stage3.py).
            zero["reduce_scatter"] = False
    return {
        "train_batch_size": cfg.micro_batch_size * grad_accum * world_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        # DeepSpeed's ZeRO writes Muon's orthogonalised updates where the gradients were and then
        # takes the norm and clips: a bound on gradients would scale the Muon step (whose norm is
        # fixed by its shapes) and AdamW's gradients alike. Muon's step is bounded by construction.
        "gradient_clipping": 0.0 if cfg.optimizer == "muon" else cfg.grad_clip,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {
            "enabled": precision == "fp16",
            "loss_scale": 0,  # 0 = dynamic loss scaling
            "initial_scale_power": cfg.initial_loss_scale_power,
            "loss_scale_window": 1000,
            "hysteresis": 2,
            "min_loss_scale": 1,
        },
        "zero_optimization": zero,
        "optimizer": optimizer_config(cfg, device),
        # No "scheduler" entry: DeepSpeed's WarmupCosineLR spends the first two steps at
        # lr 0; the schedule comes from tasks/training/schedule.py instead.
        "checkpoint": {"load_universal": load_universal},
        # Pipeline stages under tensor parallelism send whole activations, not a 1/T slice
        # each: DeepSpeed caches the slices' layout from the first micro-batch, and
        # validation's smaller last micro-batch then fails to gather. (Read by the pipeline
        # engine only.)
        "pipeline": {"pipe_partitioned": False, "grad_partitioned": False},
        "steps_per_print": 10**9,  # metrics are logged by the loop itself
        "wall_clock_breakdown": False,
    }


def optimizer_config(cfg: TrainingConfig, device: str) -> dict[str, Any]:
    """DeepSpeed's optimizer entry: AdamW, or Muon with an auxiliary AdamW. The groups'
    weight decay (tasks/training/engine.py:param_groups) overrides the one given here."""
    adamw: dict[str, Any] = {
        "lr": cfg.lr,
        "betas": list(cfg.betas),
        "eps": cfg.eps,
        "weight_decay": cfg.weight_decay,
        # GPU: DeepSpeed's fused Adam kernel. CPU: torch's AdamW, which avoids a multi-minute
        # JIT build of FusedAdam. With optimizer offload DeepSpeed picks its CPU Adam itself.
        "torch_adam": device != "cuda",
    }
    if cfg.optimizer == "muon":
        # "lr" serves the AdamW half, "muon_lr" the Muon half. Muon's auxiliary AdamW does not
        # take torch's `fused` flag.
        muon = {"muon_lr": cfg.muon.lr, "momentum": cfg.muon.momentum, "ns_method": cfg.muon.ns_method}
        return {"type": "Muon", "params": {**adamw, **muon}}
    # torch's fused CPU kernel: ZeRO hands the optimizer one flat tensor per group, and the
    # unfused update allocates (and page-faults) several temporaries of that size per step:
    # 2.4 s -> 0.5 s for GPT-2 124M's step on 2 cores.
    return {"type": "AdamW", "params": {**adamw, **({"fused": True} if device != "cuda" else {})}}

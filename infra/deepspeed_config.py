"""The DeepSpeed JSON, derived from the training config in one place (never kept beside it)."""
from __future__ import annotations

from typing import Any

import torch

from tasks.training.config import TrainingConfig


def resolve_precision(requested: str) -> str:
    """Turn 'auto' into the fastest precision this device computes natively.

    On a CPU without native bf16 (AVX2 only), PyTorch emulates bf16 matmuls: about 20x slower
    than fp32 for the demo model's forward+backward (benchmarks/precision_cpu.py).
    """
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def deepspeed_config(cfg: TrainingConfig, world_size: int, precision: str) -> dict[str, Any]:
    """`precision` is the resolved one (see `resolve_precision`)."""
    return {
        "train_batch_size": cfg.micro_batch_size * cfg.grad_accum_steps * world_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.grad_clip,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "zero_optimization": {"stage": cfg.zero_stage},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": list(cfg.betas),
                "eps": 1e-8,
                "weight_decay": cfg.weight_decay,
                # torch's AdamW: avoids a multi-minute JIT build of FusedAdam on CPU.
                "torch_adam": True,
            },
        },
        # No "scheduler" entry: DeepSpeed's WarmupCosineLR spends the first two steps at
        # lr 0; the schedule comes from tasks/training/schedule.py instead.
        "steps_per_print": 10**9,  # metrics are logged by the loop itself
        "wall_clock_breakdown": False,
    }

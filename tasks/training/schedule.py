"""Learning-rate schedule: linear warm-up to the peak, then cosine decay to a floor."""
from __future__ import annotations

import math
from functools import partial

import torch

from tasks.training.config import TrainingConfig


def lr_multiplier(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Fraction of the peak rate for 0-based optimizer step `step` of `total`.

    Warm-up reaches the peak on step `warmup - 1`; the last step runs at exactly `min_ratio`.
    """
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig) -> torch.optim.lr_scheduler.LambdaLR:
    fn = partial(lr_multiplier, warmup=cfg.warmup_steps, total=cfg.max_steps, min_ratio=cfg.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

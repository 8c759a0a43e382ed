"""Learning-rate schedules, as a multiplier of the peak rate per optimizer step.

All three start with a linear warm-up to the peak:
- cosine: then cosine decay to `min_ratio` at the last step (GPT-3, Chinchilla);
- wsd (warm-up, stable, decay): then flat at the peak, and a linear decay to `min_ratio`
  over the last `decay_fraction` of the steps. The stable phase does not depend on the run's
  length, so a run can be extended (a larger max_steps) while it has not begun to decay;
- constant: then flat at the peak.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from tasks.training.config import TrainingConfig


def lr_multiplier(
    step: int, warmup: int, total: int, min_ratio: float, kind: str = "cosine", decay_fraction: float = 0.2
) -> float:
    """Fraction of the peak rate for 0-based optimizer step `step` of `total`.

    Warm-up reaches the peak on step `warmup - 1`; cosine and wsd end at exactly `min_ratio`.
    """
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "wsd":
        start = decay_start(total, warmup, decay_fraction)
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / max(1, total - start))
        return 1.0 - (1.0 - min_ratio) * progress
    decay_steps = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def decay_start(total: int, warmup: int, decay_fraction: float) -> int:
    """wsd: the first 0-based step of the decay phase."""
    return max(warmup, total - max(1, round(decay_fraction * total)))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig) -> torch.optim.lr_scheduler.LambdaLR:
    fn = partial(
        lr_multiplier,
        warmup=cfg.warmup_steps,
        total=cfg.max_steps,
        min_ratio=cfg.min_lr_ratio,
        kind=cfg.schedule,
        decay_fraction=cfg.decay_fraction,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

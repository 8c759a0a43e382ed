"""Loss-spike and divergence detection.

A step is bad when its loss or gradient norm is not finite, or its loss stands out from
the recent ones: above the window's mean x `factor`, or above the mean plus `sigmas`
standard deviations (OLMo-core's rule). Bad steps never enter the window, so a spike does
not raise the bar for the next one.
"""

from __future__ import annotations

import math
from collections import deque

from tasks.training.config import SpikeConfig


class SpikeDetector:
    def __init__(self, cfg: SpikeConfig):
        self.cfg = cfg
        self.history: deque[float] = deque(maxlen=cfg.window)

    def check(self, loss: float, grad_norm: float | None) -> str | None:
        """Why this step is bad, or None; a good step's loss joins the window."""
        if not math.isfinite(loss):
            return f"loss is {loss}"
        if grad_norm is not None and not math.isfinite(grad_norm):
            return f"gradient norm is {grad_norm}"
        reason = self._outlier(loss) if self.cfg.enabled else None
        if reason is None:
            self.history.append(loss)
        return reason

    def _outlier(self, loss: float) -> str | None:
        n = len(self.history)
        if n < self.cfg.min_history:
            return None
        mean = sum(self.history) / n
        if self.cfg.factor is not None and loss > mean * self.cfg.factor:
            return f"loss {loss:.4g} is above {self.cfg.factor:g}x the mean of the last {n} steps ({mean:.4g})"
        std = math.sqrt(sum((v - mean) ** 2 for v in self.history) / (n - 1))
        if self.cfg.sigmas is not None and std > 0 and loss > mean + self.cfg.sigmas * std:
            return (
                f"loss {loss:.4g} is {(loss - mean) / std:.1f} standard deviations above the mean "
                f"of the last {n} steps ({mean:.4g})"
            )
        return None

    def state_dict(self) -> list[float]:
        return list(self.history)

    def load_state_dict(self, values: list[float]) -> None:
        self.history = deque(values, maxlen=self.cfg.window)

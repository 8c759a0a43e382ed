"""How a run spreads the model over its ranks: the `Strategy` protocol the training loop
calls, the records it exchanges with the loop, and `strategy_for`, the one place that picks
an implementation from the layout.

Two implementations: `DataParallel` (tasks/training/data_parallel.py), the whole model on
every rank in DeepSpeed's ordinary engine under ZeRO, and `ThreeD`
(tasks/training/parallel/three_d.py), pipeline stages of tensor-sharded layers in
DeepSpeed's pipeline engine, replicated over the remaining ranks. Everything else (data
order, spike roll-backs, checkpoint sealing, metrics) is the loop's, the same for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from tasks.training.checkpoint_store import Published
from tasks.training.run_state import Attempt, Setup

# Is the stretch [start, end) of stream positions poisoned (Faults.poisons)? A poisoned
# micro-step's loss and gradients are multiplied by POISON, as a corrupt batch would blow up.
Poisoned = Callable[[int, int], bool]
POISON = 1000.0


def unpoisoned(start: int, end: int) -> bool:
    """The `Poisoned` of a run without fault injection."""
    return False


class StepResult(NamedTuple):
    """One optimizer step, still on the device (no host sync): the loss sum and the number
    of losses in it, this rank's share of the real tokens, and its data-wait seconds."""

    loss_sum: torch.Tensor
    losses: torch.Tensor
    tokens: torch.Tensor
    wait: float


@dataclass
class FinalWeights:
    """The single-device model's fp32 weights, on rank 0 (empty elsewhere), and, where the
    strategy exported them from shards, the check rank 0 runs on the saved final folder."""

    state_dict: dict[str, torch.Tensor]
    check: Callable[[Path], dict[str, Any]] | None = None


class Strategy(Protocol):
    """What differs between data parallelism and 3D parallelism, for one run's `Setup`."""

    def reshards(self, found: Published) -> bool:
        """True when `found` must become a universal checkpoint before this world loads it."""
        ...

    def build_engine(self, ds_config: dict[str, Any], initial: dict[str, torch.Tensor] | None) -> Any:
        """The DeepSpeed engine, its optimizer and scheduler, from the seeded weights (or `initial`)."""
        ...

    def train_step(self, a: Attempt, accum: int, poisoned: Poisoned) -> StepResult:
        """One optimizer step of `accum` micro-steps from `a.sampler`."""
        ...

    def validation_loss(self, engine: Any) -> float:
        """The mean validation loss, the same on every rank (a collective)."""
        ...

    def client_state(self) -> dict[str, Any]:
        """What this strategy adds to a checkpoint's client state."""
        ...

    def final_weights(self, a: Attempt) -> FinalWeights:
        """The trained model's weights for checkpoints/final/; every rank must call it."""
        ...


def strategy_for(s: Setup) -> Strategy:
    # Imported here: both implementations import this module's records.
    from tasks.training.data_parallel import DataParallel
    from tasks.training.parallel.three_d import ThreeD

    return ThreeD(s) if s.layout.model_parallel else DataParallel(s)

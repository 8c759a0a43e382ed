"""Deterministic, resumable assignment of training rows to data-parallel ranks."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class SamplerState:
    epoch: int = 0
    cursor: int = 0  # micro-batches this rank has consumed in the current epoch


class RankSampler:
    """Each epoch, a seeded permutation of all rows is dealt round-robin to ranks.

    Ranks see disjoint rows; a row left over when rows do not divide evenly waits for the
    next epoch's permutation. The state is two integers, saved with each checkpoint.
    """

    def __init__(self, num_rows: int, rank: int, world: int, batch: int, seed: int):
        per_rank = num_rows // world
        if per_rank < batch:
            raise ValueError(
                f"{num_rows} training sequences cannot give {world} rank(s) a micro-batch of "
                f"{batch}; give more data or lower training.micro_batch_size"
            )
        self.num_rows, self.rank, self.world, self.batch, self.seed = num_rows, rank, world, batch, seed
        self.batches_per_epoch = per_rank // batch
        self.state = SamplerState()
        self._cached: tuple[int, np.ndarray] | None = None

    def _rank_rows(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
            self._cached = (epoch, perm[self.rank :: self.world])
        return self._cached[1]

    def next_batch(self) -> np.ndarray:
        if self.state.cursor >= self.batches_per_epoch:
            self.state = SamplerState(self.state.epoch + 1, 0)
        rows = self._rank_rows(self.state.epoch)
        start = self.state.cursor * self.batch
        self.state.cursor += 1
        return rows[start : start + self.batch]

    def state_dict(self) -> dict[str, int]:
        return asdict(self.state)

    def load_state_dict(self, d: dict[str, int]) -> None:
        self.state = SamplerState(**d)

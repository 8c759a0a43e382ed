"""The training data stream: a seeded, mixture-weighted, rank-disjoint and exactly resumable
order of token rows.

Epoch e is a permutation of the plan's M = sum(epoch_rows) slots; slot j names a source
and a row of it (tasks/tokenization/mixture.py). The epochs are laid end to end into one
stream, and micro-step t of the job takes stream positions [t*W*B, (t+1)*W*B), rank r
the r-th block of B. So ranks never overlap, every slot of an epoch is served exactly
once across ranks, and the whole position is one integer: the samples consumed so far.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.tokenization.mixture import epoch_rows
from tasks.tokenization.reader import TokenRows, Verify, read_manifest, to_batch
from tasks.training.permutation import Permutation

LOOKAHEAD = 64  # micro-batches whose positions are computed in one vectorised call


class MixtureStream:
    """Maps stream positions to (source index, row index) pairs; pure, no state."""

    def __init__(self, epoch_counts: np.ndarray, available: np.ndarray, seed: int):
        self.counts, self.available, self.seed = epoch_counts, available, seed
        self.bounds = np.concatenate([[0], np.cumsum(epoch_counts)])
        self.epoch_len = int(self.bounds[-1])
        if self.epoch_len == 0:
            raise ValueError("the mixture draws no rows: every source is empty or weighted 0")
        self._perms: OrderedDict[tuple[int, ...], Permutation] = OrderedDict()

    def _perm(self, n: int, *key: int) -> Permutation:
        key = (n, *key)
        if key not in self._perms:
            self._perms[key] = Permutation(n, (self.seed, *key))
            if len(self._perms) > 256:
                self._perms.popitem(last=False)
        return self._perms[key]

    def lookup(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        epochs, slots = np.divmod(positions, self.epoch_len)
        sources = np.empty(len(positions), dtype=np.int64)
        rows = np.empty(len(positions), dtype=np.int64)
        for e in np.unique(epochs):
            sel = np.flatnonzero(epochs == e)
            j = self._perm(self.epoch_len, 0, int(e))(slots[sel])
            src = np.searchsorted(self.bounds, j, side="right") - 1
            k = j - self.bounds[src]
            sources[sel] = src
            # A source drawn more often than it has rows is repeated; each repeat (and each
            # subsample) is its own permutation of the source's rows.
            rep, r = np.divmod(k, self.available[src])
            for s, p in set(zip(src.tolist(), rep.tolist())):
                m = (src == s) & (rep == p)
                rows[sel[m]] = self._perm(int(self.available[s]), 1, int(e), s, p)(r[m])
        return sources, rows


@dataclass
class StreamPosition:
    samples: int = 0  # stream positions consumed by all ranks together (skipped ones included)
    # [start, end) stream ranges never served: the batches of a loss spike that was rolled back.
    skips: list[tuple[int, int]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "skips": [list(r) for r in self.skips]}


class RankSampler:
    """This rank's micro-batches of the stream, with a position saved in every checkpoint."""

    def __init__(self, stream: MixtureStream, rank: int, world: int, batch: int):
        self.stream, self.rank, self.world, self.batch = stream, rank, world, batch
        self.position = StreamPosition()
        self._ahead: tuple[int, np.ndarray, np.ndarray] | None = None

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(source index, row index) arrays of length `batch` for this rank's next micro-batch."""
        step = self.advance_past_skips() // (self.world * self.batch)
        if self._ahead is None or not self._ahead[0] <= step < self._ahead[0] + LOOKAHEAD:
            steps = step + np.arange(LOOKAHEAD)
            pos = ((steps * self.world + self.rank) * self.batch)[:, None] + np.arange(self.batch)
            src, rows = self.stream.lookup(pos.ravel())
            self._ahead = (step, src.reshape(LOOKAHEAD, -1), rows.reshape(LOOKAHEAD, -1))
        first, src, rows = self._ahead
        self.position.samples += self.world * self.batch
        return src[step - first], rows[step - first]

    def state_dict(self) -> dict[str, Any]:
        return self.position.state_dict()

    def advance_past_skips(self) -> int:
        """Move the position past any skipped stretch it stands in; returns the position."""
        for start, end in self.position.skips:
            if start <= self.position.samples < end:
                self.position.samples = end
        return self.position.samples

    def skip(self, start: int, end: int) -> None:
        """Never serve stream positions [start, end) (a rolled-back spike's batches)."""
        self.position.skips = sorted({*self.position.skips, (start, end)})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["samples"] % (self.world * self.batch):
            raise ValueError(
                f"saved data position {state['samples']} is not a whole number of "
                f"micro-steps of {self.world} x {self.batch} rows; resume with a "
                f"micro-batch and worker count that divide it"
            )
        skips = sorted((int(a), int(b)) for a, b in state.get("skips", []))
        self.position = StreamPosition(int(state["samples"]), skips)


class TrainingData:
    """The training split by source, memory-mapped, with the manifest's mixture plan."""

    def __init__(self, shard_dir: Path, seed: int, verify: Verify = "size", rank: int = 0, world: int = 1):
        manifest = read_manifest(shard_dir)
        self.sources, counts, available = epoch_rows(manifest["mixture"])
        # Each rank checksums only its share of the files; every rank still checks sizes and footers.
        self.rows = [
            TokenRows.open(shard_dir, "train", s, manifest=manifest, verify=verify if i % world == rank else "size")
            for i, s in enumerate(self.sources)
        ]
        for s, r, n in zip(self.sources, self.rows, available):
            if len(r) != n:
                raise ValueError(
                    f"source {s!r} has {len(r)} rows in {shard_dir}, the manifest plans "
                    f"{n}; re-run `crucible tokenize` for this run"
                )
        self.stream = MixtureStream(counts, available, seed)
        self.row_len = manifest["row_len"]

    def sampler(self, rank: int, world: int, batch: int) -> RankSampler:
        if self.stream.epoch_len < world * batch:
            raise ValueError(
                f"{self.stream.epoch_len} training sequences cannot fill one micro-step of {world} "
                f"rank(s) x {batch}; give more data or lower training.micro_batch_size"
            )
        return RankSampler(self.stream, rank, world, batch)

    def gather(self, sources: np.ndarray, rows: np.ndarray, segments: bool = False) -> tuple[torch.Tensor, ...]:
        """Batch tensors for (source, row) pairs: inputs, targets and, if asked, document segments."""
        tokens = np.empty((len(rows), self.row_len), dtype=np.int64)
        lengths = np.empty(len(rows), dtype=np.int64)
        seg = np.empty((len(rows), self.row_len), dtype=np.int64) if segments else None
        for s in np.unique(sources):
            sel = np.flatnonzero(sources == s)
            tokens[sel], lengths[sel] = self.rows[s].rows(rows[sel])
            if seg is not None:
                seg[sel] = self.rows[s].segments(rows[sel])
        return to_batch(tokens, lengths, seg)

    def rows_served(self, samples: int, chunk: int = 1 << 22) -> dict[str, int]:
        """Rows served per source by the first `samples` stream positions (all ranks together)."""
        full, rest = divmod(samples, self.stream.epoch_len)
        count = full * self.stream.counts
        e = self.stream._perm(self.stream.epoch_len, 0, full)  # only the source is needed: one permutation
        for start in range(0, rest, chunk):
            j = e(np.arange(start, min(rest, start + chunk)))
            count = count + np.bincount(
                np.searchsorted(self.stream.bounds, j, side="right") - 1, minlength=len(self.sources)
            )
        return {s: int(c) for s, c in zip(self.sources, count)}

"""A seeded pseudo-random permutation of 0..n-1 evaluated pointwise, in O(1) memory.

A shuffled epoch of a billion rows would need gigabytes per rank as an index array;
instead the position of each sample is computed on demand by a Feistel network over the
next power of four, with "cycle walking" to stay inside 0..n-1 (each step is itself a
bijection, so the walk ends and the result stays a permutation).
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fast, well-spread 64-bit hash (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class Permutation:
    """`perm[i]` for arrays of i in 0..n-1; the same seed gives the same permutation everywhere."""

    def __init__(self, n: int, seed: tuple[int, ...]):
        if n < 1:
            raise ValueError(f"cannot permute {n} items")
        self.n = n
        self.half = max(1, ((n - 1).bit_length() + 1) // 2)  # each half gets ceil(bits / 2)
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = np.random.SeedSequence(list(seed)).generate_state(ROUNDS, dtype=np.uint64)

    def _once(self, x: np.ndarray) -> np.ndarray:
        shift = np.uint64(self.half)
        left, right = x >> shift, x & self.mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right ^ key) & self.mask)
        return (left << shift) | right

    def __call__(self, i: np.ndarray) -> np.ndarray:
        x = np.asarray(i, dtype=np.uint64)
        if self.n == 1:
            return np.zeros(x.shape, dtype=np.int64)
        with np.errstate(over="ignore"):
            x = self._once(x)
            outside = x >= self.n
            while outside.any():
                x[outside] = self._once(x[outside])
                outside = x >= self.n
        return x.astype(np.int64)

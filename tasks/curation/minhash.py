"""MinHash signatures of word shingles, and their LSH band keys.

A document's words (tasks/curation/shingles.py) are hashed once each with XXH3 (xxhash: one C
call per word, faster than a Python-level cache lookup), its n-word shingles are combined from
those hashes with a position-weighted sum, and
`bands * rows` multiply-shift hash functions give the signature. Two documents with shingle
Jaccard similarity s share a given band with probability s**rows, so they collide in at
least one band with probability 1 - (1 - s**rows)**bands: with FineWeb's 14 bands of 8
rows that is 0.92 at s = 0.8 and 0.0004 at s = 0.4.
"""

from __future__ import annotations

import numpy as np
import xxhash

_MASK = (1 << 64) - 1
# Odd 64-bit multipliers combining a shingle's word hashes (position-dependent).
_SHINGLE_MULT = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x27D4EB2F165667C5,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0xA0761D6478BD642F,
    ],
    dtype=np.uint64,
)
# Names the hash functions the dedup keys are made with. Keys are never kept across runs, but
# a run resumed from its scratch keys must not mix two schemes: the run's work fingerprint
# should include this, and it changes whenever the keys' hash functions do.
KEY_SCHEME = "xxh3-64"


def stable_hash64(data: str) -> int:
    """A 64-bit hash of the UTF-8 text that is the same in every process and release (Python's
    hash() is salted per process). Keys are computed afresh each run, never stored across runs."""
    return xxhash.xxh3_64_intdigest(data)


class MinHasher:
    def __init__(self, shingle_size: int = 5, bands: int = 14, rows: int = 8, seed: int = 1):
        if shingle_size > len(_SHINGLE_MULT):
            raise ValueError(f"shingle_size {shingle_size} exceeds the supported {len(_SHINGLE_MULT)}")
        self.n, self.bands, self.rows = shingle_size, bands, rows
        rng = np.random.default_rng(seed)
        k = bands * rows
        # Multiply-shift hashing: (a*x + b) mod 2^64, keep the high 32 bits; a odd.
        self._a = rng.integers(0, 2**63, size=k, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, size=k, dtype=np.uint64)
        self._band_mult = rng.integers(0, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)

    def _word_hashes(self, words: list[str]) -> np.ndarray:
        return np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))

    def shingle_hashes(self, words: list[str]) -> np.ndarray:
        """Unique 64-bit hashes of the word n-grams (one of all words if shorter than n)."""
        wh = self._word_hashes(words)
        if len(wh) == 0:
            return wh
        n = min(self.n, len(wh))
        with np.errstate(over="ignore"):
            acc = np.zeros(len(wh) - n + 1, dtype=np.uint64)
            for j in range(n):
                acc += wh[j : len(wh) - n + 1 + j] * _SHINGLE_MULT[j]
        return np.unique(acc)

    def signature(self, words: list[str]) -> np.ndarray:
        """(bands * rows,) uint32 minimum of each hash function over the shingles."""
        return self.signature_of(self.shingle_hashes(words))

    def signature_of(self, sh: np.ndarray) -> np.ndarray:
        """The signature of a document given its shingle hashes."""
        if len(sh) == 0:
            return np.full(self.bands * self.rows, np.iinfo(np.uint32).max, dtype=np.uint32)
        # In place, one (shingles, k) buffer; the shift is taken after the minimum, which it
        # commutes with (x >> 32 is monotone), so it runs on k values instead of the matrix.
        hashed = np.multiply(sh[:, None], self._a[None, :])
        np.add(hashed, self._b[None, :], out=hashed)
        return (hashed.min(axis=0) >> np.uint64(32)).astype(np.uint32)

    def band_keys(self, signature: np.ndarray) -> np.ndarray:
        """(bands,) uint64 key per band; equal keys mean (almost surely) an equal band."""
        rows = signature.reshape(self.bands, self.rows).astype(np.uint64)
        with np.errstate(over="ignore"):
            keys = (rows * self._band_mult[None, :]).sum(axis=1, dtype=np.uint64)
            keys ^= keys >> np.uint64(29)
            keys *= np.uint64(0xBF58476D1CE4E5B9)
            keys ^= keys >> np.uint64(32)
        return keys

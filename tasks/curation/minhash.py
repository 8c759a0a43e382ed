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

from itertools import chain, pairwise

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
# Shingles hashed at once by the batch signature: a (chunk, k) uint64 buffer, 7 MB at k = 112,
# so memory stays bounded however long a document or batch is.
_SIGNATURE_CHUNK = 8192


def stable_hash64(data: str) -> int:
    """A 64-bit hash of the UTF-8 text that is the same in every process and release (Python's
    hash() is salted per process). Keys are computed afresh each run, never stored across runs."""
    return xxhash.xxh3_64_intdigest(data.encode())  # xxhash 4 takes bytes only; 3.x encoded str as UTF-8


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
        hashes = map(xxhash.xxh3_64_intdigest, map(str.encode, words))  # both maps in C
        return np.fromiter(hashes, dtype=np.uint64, count=len(words))

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

    def shingle_hashes_batch(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """shingle_hashes of each document, concatenated, and the (len(docs) + 1,) offsets of
        each document's run: the same values in the same order, computed for all at once."""
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        total = int(lengths.sum())
        words = map(str.encode, chain.from_iterable(docs))
        wh = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=total)
        word_doc = np.repeat(np.arange(len(docs)), lengths)
        pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # index within its document
        full = self._full_shingles(wh, word_doc, pos, lengths)
        short = self._short_shingles(wh, word_doc, pos, lengths)
        values = np.concatenate([full[0], short[0]])
        owner = np.concatenate([full[1], short[1]])
        if len(short[0]):  # two sorted runs: a stable merge puts each document's shingles together
            order = np.argsort(owner, kind="stable")
            values, owner = values[order], owner[order]
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=len(docs)), out=offsets[1:])
        # np.unique per document: sort each run in place (one sort of all would need a
        # (document, hash) key, and lexsort of that is several times slower), drop repeats.
        for lo, hi in pairwise(offsets.tolist()):
            values[lo:hi].sort()
        keep = np.ones(len(values), dtype=bool)
        keep[1:] = (values[1:] != values[:-1]) | (owner[1:] != owner[:-1])
        np.cumsum(np.bincount(owner[keep], minlength=len(docs)), out=offsets[1:])
        return values[keep], offsets

    def _full_shingles(
        self, wh: np.ndarray, word_doc: np.ndarray, pos: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every n-word window that lies inside one document of at least n words, and its document."""
        m = len(wh) - self.n + 1
        if m <= 0:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        with np.errstate(over="ignore"):
            acc = np.zeros(m, dtype=np.uint64)
            for j in range(self.n):
                acc += wh[j : m + j] * _SHINGLE_MULT[j]
        starts = pos[:m] <= lengths[word_doc[:m]] - self.n
        return acc[starts], word_doc[:m][starts]

    def _short_shingles(
        self, wh: np.ndarray, word_doc: np.ndarray, pos: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The one shingle of all its words of each document shorter than n (but not empty)."""
        in_short = lengths[word_doc] < self.n
        if not in_short.any():
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        docs = word_doc[in_short]
        with np.errstate(over="ignore"):
            terms = wh[in_short] * _SHINGLE_MULT[pos[in_short]]
        # A short document's words are adjacent: sum each run (mod 2^64, as the sequential sum).
        firsts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        return np.add.reduceat(terms, firsts), docs[firsts]

    def signatures_of(self, flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(documents, bands * rows) signatures of documents given as shingle_hashes_batch
        returns them; each row equals signature_of of that document's shingles."""
        n_docs, k = len(offsets) - 1, self.bands * self.rows
        mins = np.full((n_docs, k), np.iinfo(np.uint64).max, dtype=np.uint64)
        owner = np.repeat(np.arange(n_docs), np.diff(offsets))
        # (k, chunk), not (chunk, k): numpy's inner loops then run over the long axis, several
        # times faster than over k = 112. One buffer for every chunk: no page faults a chunk.
        buffer = np.empty((k, min(_SIGNATURE_CHUNK, len(flat))), dtype=np.uint64)
        for lo in range(0, len(flat), _SIGNATURE_CHUNK):
            hi = min(lo + _SIGNATURE_CHUNK, len(flat))
            # Runs within the chunk: one per document, cut at the chunk's ends.
            chunk_owner = owner[lo:hi]
            firsts = np.flatnonzero(np.r_[True, chunk_owner[1:] != chunk_owner[:-1]])
            hashed = np.multiply(self._a[:, None], flat[None, lo:hi], out=buffer[:, : hi - lo])
            np.add(hashed, self._b[:, None], out=hashed)
            runs = chunk_owner[firsts]
            mins[runs] = np.minimum(mins[runs], np.minimum.reduceat(hashed, firsts, axis=1).T)
        return (mins >> np.uint64(32)).astype(np.uint32)

    def band_keys_batch(self, signatures: np.ndarray) -> np.ndarray:
        """(documents, bands) band_keys of each row of a (documents, bands * rows) signature matrix."""
        rows = signatures.reshape(len(signatures), self.bands, self.rows).astype(np.uint64)
        with np.errstate(over="ignore"):
            keys = (rows * self._band_mult[None, None, :]).sum(axis=2, dtype=np.uint64)
            keys ^= keys >> np.uint64(29)
            keys *= np.uint64(0xBF58476D1CE4E5B9)
            keys ^= keys >> np.uint64(32)
        return keys

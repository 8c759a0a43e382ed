"""Exact Jaccard verification of MinHash candidate pairs.

LSH proposes pairs with a probability that only rises steeply around the threshold (0.56
at Jaccard 0.7 with 14 x 8 bands), so unverified buckets would merge documents well below
it. The filter pass stores each document's sorted shingle hashes; a candidate pair is kept
only if the exact Jaccard of those sets reaches `min_similarity`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infra.core.storage import atomic_path
from tasks.curation.keyed_files import split_doc_id


def _files(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + ".flat.npy"), stem.with_name(stem.name + ".offsets.npy")


def write_shingle_sets(sets: list[np.ndarray], stem: Path) -> None:
    """One shard's shingle sets, concatenated, plus row offsets: two .npy files that can be
    memory-mapped (an .npz cannot), so lookups read only the rows they need."""
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sets])
    flat = np.concatenate(sets) if sets else np.empty(0, dtype=np.uint64)
    for arr, dest in zip((flat, offsets), _files(stem)):
        with atomic_path(dest) as tmp, open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


class ShingleSets:
    """Memory-mapped lookups of any document's shingle set by its doc id."""

    def __init__(self, path_of_shard):
        self._path_of_shard = path_of_shard
        self._open: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, doc: int) -> np.ndarray:
        shard, row = split_doc_id(doc)
        if shard not in self._open:
            flat_path, offsets_path = _files(self._path_of_shard(shard))
            self._open[shard] = (
                np.load(flat_path, mmap_mode="r", allow_pickle=False),
                np.load(offsets_path, mmap_mode="r", allow_pickle=False),
            )
        flat, offsets = self._open[shard]
        return np.asarray(flat[offsets[row] : offsets[row + 1]])


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def verify_pairs(
    src: np.ndarray, dst: np.ndarray, sets: ShingleSets, min_similarity: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean mask of pairs whose exact Jaccard >= min_similarity, and their Jaccards."""
    sims = np.array([jaccard_sorted(sets.get(int(a)), sets.get(int(b))) for a, b in zip(src, dst)], dtype=np.float64)
    return sims >= min_similarity, sims

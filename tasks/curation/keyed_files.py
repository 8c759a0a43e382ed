"""Record files sorted by a uint64 key, read back one key range at a time.

This is how curation shuffles without a central process: every shard task writes its
records sorted by key, and the task that owns key range p reads just that range from every
shard's file (binary search on a memory map), so its memory is its share of the corpus.
Document ids are `shard << 32 | row`, so "all records of shard i" is also a key range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infra.core.storage import atomic_path

KEY_SPACE = 1 << 64


def doc_id(shard: int, row: int) -> int:
    return (shard << 32) | row


def split_doc_id(doc: int) -> tuple[int, int]:
    return doc >> 32, doc & 0xFFFFFFFF


def key_range(part: int, parts: int) -> tuple[int, int]:
    """[lo, hi) of partition `part` of the uint64 key space cut into `parts` equal ranges."""
    return part * KEY_SPACE // parts, (part + 1) * KEY_SPACE // parts


def shard_range(shard: int) -> tuple[int, int]:
    return doc_id(shard, 0), doc_id(shard + 1, 0)


def write_sorted(records: np.ndarray, key: str, dest: Path) -> None:
    """Save a structured array sorted by `key`, atomically (.npy, no pickles)."""
    order = np.argsort(records[key], kind="stable")
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, records[order], allow_pickle=False)


def read_range(path: Path, key: str, lo: int, hi: int) -> np.ndarray:
    """Records of a sorted file with lo <= key < hi; only that slice is read from disk."""
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    if len(data) == 0:
        return np.array(data)
    keys = data[key]
    start = int(np.searchsorted(keys, np.uint64(lo), side="left"))
    end = len(keys) if hi >= KEY_SPACE else int(np.searchsorted(keys, np.uint64(hi), side="left"))
    return np.array(data[start:end])


def read_range_all(paths: list[Path], key: str, lo: int, hi: int) -> np.ndarray:
    parts = [read_range(p, key, lo, hi) for p in paths if p.exists()]
    if not parts:
        raise FileNotFoundError(f"none of {len(paths)} keyed files exist, e.g. {paths[0] if paths else '?'}")
    return np.concatenate(parts)

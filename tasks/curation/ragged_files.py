"""One shard's variable-length rows (shingle sets, document ids) as two memory-mappable files.

A row is a 1-D array; the rows are concatenated into `<stem>.flat.npy` and their boundaries
kept in `<stem>.offsets.npy`. An .npz cannot be memory-mapped, and these are read a few rows
at a time from every shard (verifying candidate pairs, naming the document a duplicate
kept), so a lookup must read only the rows it needs, never the shard.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from infra.core.storage import atomic_path
from tasks.curation.keyed_files import split_doc_id


def _files(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + ".flat.npy"), stem.with_name(stem.name + ".offsets.npy")


def write_ragged(rows: list[np.ndarray], stem: Path, dtype: np.dtype) -> None:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    flat = np.concatenate(rows).astype(dtype, copy=False) if rows else np.empty(0, dtype=dtype)
    for arr, dest in zip((flat, offsets), _files(stem)):
        with atomic_path(dest) as tmp, open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def write_strings(values: list[str], stem: Path) -> None:
    """Strings as ragged rows of their UTF-8 bytes."""
    write_ragged([np.frombuffer(v.encode(), dtype=np.uint8) for v in values], stem, np.dtype(np.uint8))


class RaggedFiles:
    """Row lookups by document id across shards. Each shard's pair of files is opened once
    and memory-mapped; `files_opened` and `rows_read` count the work, which the curation
    stats report and tests hold linear in the corpus."""

    def __init__(self, stem_of_shard: Callable[[int], Path]):
        self._stem_of_shard = stem_of_shard
        self._open: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.files_opened = 0
        self.rows_read = 0

    def get(self, doc: int) -> np.ndarray:
        shard, row = split_doc_id(doc)
        if shard not in self._open:
            flat, offsets = _files(self._stem_of_shard(shard))
            self._open[shard] = (
                np.load(flat, mmap_mode="r", allow_pickle=False),
                np.load(offsets, mmap_mode="r", allow_pickle=False),
            )
            self.files_opened += 2
        flat_rows, bounds = self._open[shard]
        self.rows_read += 1
        return np.asarray(flat_rows[bounds[row] : bounds[row + 1]])

    def string(self, doc: int) -> str:
        return self.get(doc).tobytes().decode()

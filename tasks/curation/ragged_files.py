"""One shard's variable-length rows (shingle sets, document ids) as two memory-mappable files.

A row is a 1-D array; the rows are concatenated into `<stem>.flat.npy` and their boundaries
kept in `<stem>.offsets.npy`. These are read a few rows at a time from every shard
(verifying candidate pairs, naming the document a duplicate kept), so a lookup reads only
the rows it needs, never the shard (an .npz could not be read in part).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from infra.core.storage import atomic_path
from tasks.curation.keyed_files import split_doc_id
from tasks.curation.npy_reader import OpenReaders


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
    (npy_reader.py: read, not memory-mapped); `files_opened` and `rows_read` count the work,
    which the curation stats report and tests hold linear in the corpus."""

    def __init__(self, stem_of_shard: Callable[[int], Path]):
        self._stem_of_shard = stem_of_shard
        self._readers = OpenReaders()
        self.rows_read = 0

    @property
    def files_opened(self) -> int:
        return self._readers.files_opened

    def get(self, doc: int) -> np.ndarray:
        shard, row = split_doc_id(doc)
        flat, offsets = (self._readers.get(p) for p in _files(self._stem_of_shard(shard)))
        start, end = (int(x) for x in offsets.rows(row, row + 2))
        self.rows_read += 1
        return flat.rows(start, end)

    def string(self, doc: int) -> str:
        return self.get(doc).tobytes().decode()

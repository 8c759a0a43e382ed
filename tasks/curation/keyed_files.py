"""Record files sorted by a uint64 key, read back one key range at a time.

This is how curation shuffles without a central process: every shard task writes its
records sorted by key, and the task that owns key range p reads just that range from every
shard's file (a bisection, then one read), so its memory is its share of the corpus.
Document ids are `shard << 32 | row`, so "all records of shard i" is also a key range.

A shard's dedup keys (exact / near-exact and every MinHash band) share one file sorted by
(band, key), so a dedup task opens each shard once, not once per band; and a task that owns
several key ranges keeps the files it opened for all of them (KeyFiles).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from infra.core.storage import atomic_path
from tasks.curation.npy_reader import NpyReader, OpenReaders

KEY_SPACE = 1 << 64
# One dedup key of one document. `band` 0..bands-1: a MinHash band, `key` its bucket and `aux`
# the document's near-exact key. EXACT_BAND: `key` the near-exact key (the exact one when
# near-exact dedup is off), `aux` the exact key.
KEY_DTYPE = np.dtype([("band", "u1"), ("key", "<u8"), ("aux", "<u8"), ("doc", "<u8")])
EXACT_BAND = 255


def doc_id(shard: int, row: int) -> int:
    return (shard << 32) | row


def split_doc_id(doc: int) -> tuple[int, int]:
    return doc >> 32, doc & 0xFFFFFFFF


def key_range(part: int, parts: int) -> tuple[int, int]:
    """[lo, hi) of partition `part` of the uint64 key space cut into `parts` equal ranges."""
    return part * KEY_SPACE // parts, (part + 1) * KEY_SPACE // parts


def owned_ranges(task: int, tasks: int, parts: int) -> range:
    """The key ranges dedup task `task` of `tasks` works through, one after the other. The
    tasks are as many as the cluster runs at once, not as the key ranges, so that the number
    of (task, shard file) opens grows with the shards alone."""
    return range(task, parts, tasks)


def shard_range(shard: int) -> tuple[int, int]:
    return doc_id(shard, 0), doc_id(shard + 1, 0)


def write_sorted(records: np.ndarray, key: str, dest: Path) -> None:
    """Save a structured array sorted by `key`, atomically (.npy, no pickles)."""
    order = np.argsort(records[key], kind="stable")
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, records[order], allow_pickle=False)


class _Column:
    """One field of rows start..stop of a sorted file, as a sequence `bisect` can search,
    reading one row per probe: about log2(n) small reads, never the whole column (as
    np.searchsorted on a memory map would, copying the strided field first)."""

    def __init__(self, data: NpyReader, field: str, start: int, stop: int):
        self.data, self.field, self.start, self.stop = data, field, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> int:
        return self.data.value(self.start + i, self.field)


def _first_at_least(data: NpyReader, field: str, value: int, start: int, stop: int) -> int:
    """The first row in start..stop whose `field` is >= value (rows sorted by it there)."""
    return start + bisect.bisect_left(_Column(data, field, start, stop), value)


def write_keys(records: np.ndarray, dest: Path) -> None:
    """A shard's KEY_DTYPE records sorted by (band, key, doc), atomically."""
    order = np.lexsort((records["doc"], records["key"], records["band"]))
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, records[order], allow_pickle=False)


class SortedFiles:
    """Files sorted by `field`, each opened once however many ranges a task reads from it:
    a task that owns several key ranges or shards opens each file once, not once per range."""

    def __init__(self, paths: list[Path], field: str):
        self.paths, self.field = paths, field
        self._readers = OpenReaders()

    @property
    def files_opened(self) -> int:
        return self._readers.files_opened

    def _slice(self, data: NpyReader, lo: int, hi: int, first: int, last: int) -> np.ndarray:
        start = _first_at_least(data, self.field, lo, first, last)
        end = last if hi >= KEY_SPACE else _first_at_least(data, self.field, hi, start, last)
        return data.rows(start, end)

    def read(self, lo: int, hi: int) -> list[np.ndarray]:
        """Each existing file's records with lo <= field < hi, in the order of `paths`."""
        out = []
        for path in self.paths:
            if path.exists():
                data = self._readers.get(path)
                out.append(self._slice(data, lo, hi, 0, len(data)))
        return out


class KeyFiles(SortedFiles):
    """Every shard's key file (KEY_DTYPE, sorted by band, then key)."""

    def __init__(self, paths: list[Path]):
        super().__init__(paths, "key")

    def read_band(self, band: int, lo: int, hi: int) -> np.ndarray:
        """Every shard's records of `band` with lo <= key < hi."""
        out = []
        for path in self.paths:
            data = self._readers.get(path)
            first = _first_at_least(data, "band", band, 0, len(data))
            last = _first_at_least(data, "band", band + 1, first, len(data))
            out.append(self._slice(data, lo, hi, first, last))
        return np.concatenate(out) if out else np.empty(0, dtype=KEY_DTYPE)

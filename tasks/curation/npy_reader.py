"""Rows of a .npy file read with pread, a few at a time.

The dedup steps read small slices (a key range, a document's shingle set) of many large
files. A memory map would serve them too, but every page it touches stays in the process's
resident set until the map is closed, so a task that reads a little from every shard ends up
counting most of the scratch files as its own memory; pread leaves them in the page cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np


def read_header(f: BinaryIO) -> tuple[np.dtype, int]:
    """The dtype and length of the 1-D array whose .npy header starts at f's position; f is
    left where its data starts."""
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(f)
    if fortran or len(shape) != 1:
        raise ValueError(f"{getattr(f, 'name', 'a .npy file')}: expected a 1-D C-ordered array, found shape {shape}")
    return dtype, int(shape[0])


class NpyReader:
    """One .npy file, open for reads of row ranges and single fields."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            self.dtype, self.length = read_header(f)
            self._data_at = f.tell()
        self._fd: int | None = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.length

    def rows(self, start: int, end: int) -> np.ndarray:
        size = self.dtype.itemsize
        count = max(0, end - start)
        assert self._fd is not None, "read after close()"
        data = os.pread(self._fd, count * size, self._data_at + start * size)
        return np.frombuffer(bytearray(data), dtype=self.dtype, count=count)

    def value(self, row: int, field: str) -> int:
        return int(self.rows(row, row + 1)[0][field])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        # A task finalizing hundreds of shards makes a reader set per shard: each must give its
        # descriptors back when dropped, or the worker runs out of them.
        self.close()


class OpenReaders:
    """NpyReaders by path, each opened once; past `limit` open files the oldest is closed
    (and reopened if needed again), so a task reading from tens of thousands of shards stays
    under the open-file limit. `files_opened` counts every open."""

    def __init__(self, limit: int = 1000):
        self.limit = limit
        self._open: dict[Path, NpyReader] = {}
        self.files_opened = 0

    def get(self, path: Path) -> NpyReader:
        reader = self._open.get(path)
        if reader is None:
            if len(self._open) >= self.limit:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            reader = self._open[path] = NpyReader(path)
            self.files_opened += 1
        return reader

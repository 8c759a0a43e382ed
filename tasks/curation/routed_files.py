"""Edges sent from writer tasks to partitions: one file per writer, read one partition at a time.

A writer's file holds an offsets array (where each partition's edges start), then the edges
grouped by partition. The task owning partition q reads, from each writer's file, two
offsets and its slice. A file per (writer, partition) instead would make the files written
grow as the partitions squared, most of them empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infra.core.storage import atomic_path
from tasks.curation.dedup import EDGE_DTYPE
from tasks.curation.npy_reader import read_header


def write_routed(edges: np.ndarray, owner: np.ndarray, parts: int, dest: Path) -> None:
    """Save EDGE_DTYPE `edges`, edge i bound for partition owner[i], grouped by partition
    and sorted by source within it, atomically."""
    order = np.lexsort((edges["src"], owner))
    offsets = np.zeros(parts + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(owner, minlength=parts))
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, offsets, allow_pickle=False)
        np.save(f, edges[order], allow_pickle=False)


def _read_slice(path: Path, part: int) -> np.ndarray:
    with open(path, "rb") as f:
        _, n_offsets = read_header(f)
        offsets_at = f.tell()
        f.seek(offsets_at + 8 * part)
        lo, hi = (int(x) for x in np.fromfile(f, dtype="<i8", count=2))
        f.seek(offsets_at + 8 * n_offsets)
        read_header(f)
        f.seek(f.tell() + lo * EDGE_DTYPE.itemsize)
        return np.fromfile(f, dtype=EDGE_DTYPE, count=hi - lo)


def read_partition(folder: Path, part: int) -> np.ndarray:
    """Every writer's edges for partition `part` in `folder`."""
    files = sorted(folder.glob("from-*.npy"))
    return np.concatenate([_read_slice(f, part) for f in files]) if files else np.empty(0, dtype=EDGE_DTYPE)

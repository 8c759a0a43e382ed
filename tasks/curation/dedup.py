"""Global duplicate decisions over key-sorted files: exact / near-exact keys and MinHash bands.

Both run as one task per key range (see keyed_files.py), so no process holds the corpus.
The document kept from a group is always the one with the smallest id (shard, then row),
i.e. the first in input order: the same rule everywhere, so runs are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.curation.keyed_files import key_range, read_range_all, write_sorted

# key: the near-exact key (or the exact one when near-exact is off); exact: the exact key.
EXACT_DTYPE = np.dtype([("key", "<u8"), ("exact", "<u8"), ("doc", "<u8")])
BAND_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])
EDGE_DTYPE = np.dtype([("src", "<u8"), ("dst", "<u8")])
# One row per removed document: which one it duplicates, and why.
DROP_DTYPE = np.dtype([("doc", "<u8"), ("kept", "<u8"), ("reason", "u1")])
REASONS = {0: "exact_duplicate", 1: "near_exact_duplicate", 2: "minhash_duplicate"}


def first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a run of equal keys starts."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def decide_exact(shard_files: list[Path], part: int, parts: int, dest: Path) -> dict[str, int]:
    """Drop every document whose key was seen with a smaller id; write drops sorted by doc."""
    recs = read_range_all(shard_files, "key", *key_range(part, parts))
    recs = recs[np.lexsort((recs["doc"], recs["key"]))]
    starts = first_of_runs(recs["key"])
    run_index = np.cumsum(starts) - 1
    first = recs[starts][run_index]  # the kept record of each row's run
    dup = ~starts
    drops = np.empty(int(dup.sum()), dtype=DROP_DTYPE)
    drops["doc"], drops["kept"] = recs["doc"][dup], first["doc"][dup]
    drops["reason"] = np.where(recs["exact"][dup] == first["exact"][dup], 0, 1)
    write_sorted(drops, "doc", dest)
    return {
        "records": len(recs),
        "exact": int((drops["reason"] == 0).sum()),
        "near_exact": int((drops["reason"] == 1).sum()),
    }


def band_edges(shard_files: list[Path], part: int, parts: int) -> np.ndarray:
    """Candidate pairs from one band's key range: each document joined to the smallest id
    sharing its bucket (a star per bucket, so edges grow with documents, not pairs)."""
    recs = read_range_all(shard_files, "key", *key_range(part, parts))
    recs = recs[np.lexsort((recs["doc"], recs["key"]))]
    starts = first_of_runs(recs["key"])
    first_doc = recs["doc"][starts][np.cumsum(starts) - 1]
    dup = ~starts
    edges = np.empty(int(dup.sum()), dtype=EDGE_DTYPE)
    edges["src"], edges["dst"] = first_doc[dup], recs["doc"][dup]
    return edges

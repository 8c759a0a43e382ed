"""Global duplicate decisions over key-sorted files: exact / near-exact keys and MinHash bands.

Both read one key range at a time (see keyed_files.py), so no process holds the corpus.
The document kept from a group is always the one with the smallest id (shard, then row),
i.e. the first in input order: the same rule everywhere, so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.curation.keyed_files import EXACT_BAND, KeyFiles, key_range, write_sorted

EDGE_DTYPE = np.dtype([("src", "<u8"), ("dst", "<u8")])
# One row per removed document: which one it duplicates, and why.
DROP_DTYPE = np.dtype([("doc", "<u8"), ("kept", "<u8"), ("reason", "u1")])
REASONS = {0: "exact_duplicate", 1: "near_exact_duplicate", 2: "minhash_duplicate"}


def first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a run of equal keys starts."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def decide_exact(keys: KeyFiles, part: int, parts: int, dest: Path) -> dict[str, int]:
    """Drop every document whose key was seen with a smaller id; write drops sorted by doc."""
    recs = keys.read_band(EXACT_BAND, *key_range(part, parts))
    recs = recs[np.lexsort((recs["doc"], recs["key"]))]
    starts = first_of_runs(recs["key"])
    run_index = np.cumsum(starts) - 1
    first = recs[starts][run_index]  # the kept record of each row's run
    dup = ~starts
    drops = np.empty(int(dup.sum()), dtype=DROP_DTYPE)
    drops["doc"], drops["kept"] = recs["doc"][dup], first["doc"][dup]
    drops["reason"] = np.where(recs["aux"][dup] == first["aux"][dup], 0, 1)
    write_sorted(drops, "doc", dest)
    return {
        "records": len(recs),
        "exact": int((drops["reason"] == 0).sum()),
        "near_exact": int((drops["reason"] == 1).sum()),
    }


@dataclass
class BandEdges:
    """One band's candidate pairs in one key range."""

    to_verify: np.ndarray  # EDGE_DTYPE: distinct texts sharing a bucket
    identical: np.ndarray  # EDGE_DTYPE: same near-exact key, so Jaccard 1: nothing to verify
    skipped: int  # copies exact dedup already removes, left out of the graph


def band_edges(keys: KeyFiles, band: int, part: int, parts: int, exact_removes_copies: bool) -> BandEdges:
    """Candidate pairs from one band's key range: a star per bucket, each text joined to the
    smallest document sharing its bucket, so edges grow with documents, not pairs.

    Documents with the same near-exact key have the same words, hence the same shingles and the
    same bucket in every band: without care, each such copy would be verified once per band,
    in as many tasks. Only the first of each near-exact group joins the star; the others are
    either left out (exact dedup removes them anyway) or joined to that first one unverified."""
    recs = keys.read_band(band, *key_range(part, parts))
    recs = recs[np.lexsort((recs["doc"], recs["aux"], recs["key"]))]  # bucket, then text, then doc
    bucket = first_of_runs(recs["key"])
    group = bucket | first_of_runs(recs["aux"])  # first document of a text in its bucket
    bucket_index, group_index = np.cumsum(bucket) - 1, np.cumsum(group) - 1
    centre = np.minimum.reduceat(recs["doc"], np.flatnonzero(bucket))[bucket_index] if len(recs) else recs["doc"]
    leader = recs["doc"][group][group_index]
    joins = group & (recs["doc"] != centre)
    copies = ~group
    to_verify = np.empty(int(joins.sum()), dtype=EDGE_DTYPE)
    to_verify["src"], to_verify["dst"] = centre[joins], recs["doc"][joins]
    identical = np.empty(0 if exact_removes_copies else int(copies.sum()), dtype=EDGE_DTYPE)
    if not exact_removes_copies:
        identical["src"], identical["dst"] = leader[copies], recs["doc"][copies]
    return BandEdges(to_verify, identical, int(copies.sum()) if exact_removes_copies else 0)


def exact_ranges(keys: KeyFiles, ranges: range, parts: int, dest_of: Callable[[int], Path]) -> dict[str, int]:
    """decide_exact over the key ranges one task owns, its shards' key files opened once."""
    total = {"records": 0, "exact": 0, "near_exact": 0}
    for part in ranges:
        for name, n in decide_exact(keys, part, parts, dest_of(part)).items():
            total[name] += n
    return {**total, "files_opened": keys.files_opened}

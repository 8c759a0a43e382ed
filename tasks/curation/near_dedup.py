"""MinHash near-duplicate candidates, in two steps of tasks that each own some key ranges:
bucket joins, then exact verification; verified pairs go to the connected-components step.

A pair of near-duplicates shares a bucket in several bands, whose keys fall in different key
ranges, i.e. different tasks. So the bucket step routes its candidate pairs by the pair
(routed_files.py) and the verification step, owning all copies of a pair, checks each pair
once: about 16 bytes shuffled per pair instead of reading two shingle sets per band.
"""

from __future__ import annotations

import numpy as np

from tasks.curation import components
from tasks.curation.config import MinHashConfig
from tasks.curation.dedup import band_edges
from tasks.curation.keyed_files import KeyFiles
from tasks.curation.output_files import CurationPaths
from tasks.curation.ragged_files import RaggedFiles
from tasks.curation.routed_files import read_partition, write_routed
from tasks.curation.similarity import verify_pairs

BUCKET_COUNTS = ("pairs_found", "identical_pairs", "copies_left_out")
VERIFY_COUNTS = ("candidate_pairs", "checked_pairs", "verified_pairs")


def pair_owner(edges: np.ndarray, parts: int) -> np.ndarray:
    """The verification partition of each pair: the same for every band that finds it."""
    with np.errstate(over="ignore"):
        return components.partition_of(edges["src"] * np.uint64(0x9E3779B97F4A7C15) + edges["dst"], parts)


def bucket_pairs(
    paths: CurationPaths, keys: KeyFiles, part: int, parts: int, cfg: MinHashConfig, exact: bool
) -> dict[str, int]:
    """All bands' candidate pairs in key range `part`, sent to their verification partitions.
    `exact`: exact dedup runs, so copies of a text are left out of the graph (see band_edges);
    otherwise they go straight to the components step, as they need no verification."""
    per_band = [band_edges(keys, b, part, parts, exact) for b in range(cfg.bands)]
    found = np.unique(np.concatenate([e.to_verify for e in per_band]))
    write_routed(found, pair_owner(found, parts), parts, paths.candidates / f"from-{part}.npy")
    identical = np.unique(np.concatenate([e.identical for e in per_band]))
    # Writers parts..2*parts-1 of round 0; the verification tasks are 0..parts-1.
    components.route(identical["src"], identical["dst"], paths.components, 0, parts + part, parts)
    return {
        "pairs_found": len(found),
        "identical_pairs": len(identical),
        "copies_left_out": sum(e.skipped for e in per_band),
    }


def bucket_ranges(
    paths: CurationPaths, shards: int, ranges: range, parts: int, cfg: MinHashConfig, exact: bool
) -> dict[str, int]:
    """bucket_pairs over the key ranges one task owns; each shard's key file opened once."""
    keys = KeyFiles([paths.keys(i) for i in range(shards)])
    total = dict.fromkeys(BUCKET_COUNTS, 0)
    for part in ranges:
        for name, n in bucket_pairs(paths, keys, part, parts, cfg, exact).items():
            total[name] += n
    return {**total, "files_opened": keys.files_opened}


def verify_partition(paths: CurationPaths, sets: RaggedFiles, part: int, parts: int, cfg: MinHashConfig) -> dict:
    """Every band's pairs of partition `part`, each checked once by exact Jaccard; the pairs
    that pass go to the connected-components step (round 0, writer `part`)."""
    pairs = np.unique(read_partition(paths.candidates, part))
    keep = np.ones(len(pairs), dtype=bool)
    checked = 0
    if cfg.min_similarity > 0 and len(pairs):
        keep, _ = verify_pairs(pairs["src"], pairs["dst"], sets, cfg.min_similarity)
        checked = len(pairs)
    components.route(pairs["src"][keep], pairs["dst"][keep], paths.components, 0, part, parts)
    return {"candidate_pairs": len(pairs), "checked_pairs": checked, "verified_pairs": int(keep.sum())}


def verify_ranges(paths: CurationPaths, ranges: range, parts: int, cfg: MinHashConfig) -> dict[str, int]:
    """verify_partition over the partitions one task owns; shingle sets opened once per shard."""
    sets = RaggedFiles(paths.shingle_sets)
    total = dict.fromkeys(VERIFY_COUNTS, 0)
    for part in ranges:
        for name, n in verify_partition(paths, sets, part, parts, cfg).items():
            total[name] += n
    return {**total, "files_opened": sets.files_opened}

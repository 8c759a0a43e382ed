"""MinHash near-duplicate candidates for one key range: bucket joins, exact verification,
then hand-off to the connected-components step."""

from __future__ import annotations

import numpy as np

from tasks.curation import components
from tasks.curation.config import MinHashConfig
from tasks.curation.dedup import band_edges
from tasks.curation.output_files import CurationPaths
from tasks.curation.similarity import ShingleSets, verify_pairs


def bucket_pairs(paths: CurationPaths, part: int, parts: int, shards: int, cfg: MinHashConfig) -> dict[str, int]:
    """All bands' candidate pairs in key range `part`, verified by exact Jaccard and routed
    to the connected-components step (round 0, writer `part`)."""
    per_band = [band_edges([paths.band_keys(b, i) for i in range(shards)], part, parts) for b in range(cfg.bands)]
    edges = np.unique(np.concatenate(per_band))  # a pair found in several bands is checked once
    keep = np.ones(len(edges), dtype=bool)
    if cfg.min_similarity > 0 and len(edges):
        keep, _ = verify_pairs(edges["src"], edges["dst"], ShingleSets(paths.shingle_sets), cfg.min_similarity)
    components.route(edges["src"][keep], edges["dst"][keep], paths.components, 0, part, parts)
    return {"candidate_pairs": len(edges), "verified_pairs": int(keep.sum())}

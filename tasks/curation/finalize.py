"""Pass 2 over one scratch shard: apply the global dedup decisions, redact PII, write output.

A document removed by exact / near-exact dedup is counted there even if MinHash also
clustered it, so each document has exactly one reason and the counts add up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.curation.config import CurationConfig
from tasks.curation.dedup import REASONS
from tasks.curation.filter_pass import removed_row
from tasks.curation.keyed_files import read_range, shard_range, split_doc_id
from tasks.curation.layout import CURATED_SCHEMA, REMOVED_SCHEMA, CurationPaths, RowSink
from tasks.curation.redact import redact
from tasks.curation.stats import StageStats


def shard_drops(index: int, drop_files: list[Path]) -> dict[int, tuple[int, int]]:
    """row -> (kept doc, reason code) for this shard, first file listed wins."""
    out: dict[int, tuple[int, int]] = {}
    lo, hi = shard_range(index)
    for path in drop_files:
        if not path.exists():
            continue
        for rec in read_range(path, "doc", lo, hi).tolist():
            out.setdefault(split_doc_id(rec[0])[1], (rec[1], rec[2]))
    return out


def _kept_ids(paths: CurationPaths, kept_docs: set[int]) -> dict[int, str]:
    """String ids of the kept documents that this shard's duplicates point at, read one
    shard's id column at a time (so memory is bounded by a shard, not the corpus)."""
    by_shard: dict[int, list[int]] = {}
    for doc in kept_docs:
        by_shard.setdefault(split_doc_id(doc)[0], []).append(doc)
    out: dict[int, str] = {}
    for shard, docs in by_shard.items():
        ids = pq.read_table(paths.filtered(shard), columns=["id"]).column("id")
        for doc in docs:
            out[doc] = ids[split_doc_id(doc)[1]].as_py()
    return out


def finalize_shard(
    index: int, cfg: CurationConfig, curated_dir: Path, exact_parts: int, minhash_parts: int, references: int = 0
) -> dict[str, Any]:
    """`references`: shards 0..references-1 hold earlier runs' documents; a document that
    duplicates one of them is removed as `previous_run_duplicate`."""
    paths = CurationPaths(curated_dir)
    drop_files = [paths.exact_drops(p) for p in range(exact_parts)] + [
        paths.minhash_drops(q) for q in range(minhash_parts)
    ]
    drops = shard_drops(index, drop_files)
    kept_ids = _kept_ids(paths, {kept for kept, _ in drops.values()})
    stats = StageStats()
    source = pq.ParquetFile(paths.filtered(index))
    row_number = 0
    with (
        RowSink(paths.kept(index), CURATED_SCHEMA) as kept,
        RowSink(paths.removed_dedup(index), REMOVED_SCHEMA) as removed,
    ):
        for group in range(source.num_row_groups):
            for row in source.read_row_group(group).to_pylist():
                stats.add_in(row["bytes_in"])
                hit = drops.get(row_number)
                row_number += 1
                text, counts = redact(row["text"], cfg.redaction)
                if hit is not None:
                    reason = "previous_run_duplicate" if split_doc_id(hit[0])[0] < references else REASONS[hit[1]]
                    stats.remove(reason, row["bytes_in"])
                    removed.add(removed_row(row, text, reason, f"duplicate of {kept_ids[hit[0]]}"))
                    continue
                stats.redactions.update(counts)
                stats.keep(row["bytes_in"])
                kept.add({"id": row["id"], "text": text, "source": row["source"], "metadata": row["metadata"]})
    stats.check_balanced(f"dedup of shard {index}")
    return {"stats": stats.to_dict()}

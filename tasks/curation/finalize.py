"""Pass 2 over one scratch shard: apply the global dedup decisions, cut repeated spans
(curation.substring_dedup), redact PII, write output.

A document removed by exact / near-exact dedup is counted there even if MinHash also
clustered it, so each document has exactly one reason and the counts add up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.curation.config import CurationConfig
from tasks.curation.dedup import REASONS
from tasks.curation.filter_pass import removed_row
from tasks.curation.keyed_files import SortedFiles, shard_range, split_doc_id
from tasks.curation.output_files import CURATED_SCHEMA, REMOVED_SCHEMA, CurationPaths, RowSink
from tasks.curation.ragged_files import RaggedFiles
from tasks.curation.redact import redact
from tasks.curation.stats import StageStats
from tasks.curation.substring_dedup import cut, find_spans, load_spans


def shard_drops(index: int, drops: SortedFiles) -> dict[int, tuple[int, int]]:
    """row -> (kept doc, reason code) for this shard, first file listed wins."""
    out: dict[int, tuple[int, int]] = {}
    for part in drops.read(*shard_range(index)):
        for rec in part.tolist():
            out.setdefault(split_doc_id(rec[0])[1], (rec[1], rec[2]))
    return out


def drop_files(paths: CurationPaths, exact_parts: int, minhash_parts: int) -> SortedFiles:
    """Every dedup step's drop files, exact ones first (their reason wins)."""
    files = [paths.exact_drops(p) for p in range(exact_parts)] + [paths.minhash_drops(q) for q in range(minhash_parts)]
    return SortedFiles(files, "doc")


def substring_group(
    shards: list[int], cfg: CurationConfig, curated_dir: Path, exact_parts: int, minhash_parts: int
) -> dict[str, Any]:
    """The repeated spans of one group of shards, among the documents dedup keeps."""

    paths = CurationPaths(curated_dir)
    drops = drop_files(paths, exact_parts, minhash_parts)
    began = time.perf_counter()
    result = find_spans(
        [paths.filtered(i) for i in shards],
        [set(shard_drops(i, drops)) for i in shards],
        cfg.substring_dedup.min_tokens,
        [paths.substring_spans(i) for i in shards],
    )
    return {
        **result,
        "shards": shards,
        "seconds": round(time.perf_counter() - began, 3),
    }  # once() adds the worker's peak memory


def _kept_ids(ids: RaggedFiles, kept_docs: set[int]) -> tuple[dict[int, str], int]:
    """String ids of the kept documents that this shard's duplicates point at, and the id rows
    read for them: one each, from the shards' id files, whatever the size of those shards."""
    before = ids.rows_read
    return {doc: ids.string(doc) for doc in kept_docs}, ids.rows_read - before


def finalize_shard(
    index: int,
    cfg: CurationConfig,
    curated_dir: Path,
    drop_files: SortedFiles,
    references: int = 0,
    ids: RaggedFiles | None = None,
) -> dict[str, Any]:
    """`drop_files` (see drop_files()) and `ids` (RaggedFiles of the shards' document ids) are
    shared by the shards one task finalizes, so each file is opened once per task. `references`:
    shards 0..references-1 hold earlier runs' documents; a document that duplicates one of
    them is removed as `previous_run_duplicate`."""
    paths = CurationPaths(curated_dir)
    opened = drop_files.files_opened
    drops = shard_drops(index, drop_files)
    sub = cfg.substring_dedup
    spans = load_spans(paths.substring_spans(index)) if sub.enabled else {}
    ids = ids if ids is not None else RaggedFiles(paths.doc_ids)
    kept_ids, ids_read = _kept_ids(ids, {kept for kept, _ in drops.values()})
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
                cuts = spans.get(row_number)
                row_number += 1
                if hit is not None:
                    reason = "previous_run_duplicate" if split_doc_id(hit[0])[0] < references else REASONS[hit[1]]
                    stats.remove(reason, row["bytes_in"])
                    text = redact(row["text"], cfg.redaction)[0]
                    removed.add(removed_row(row, text, reason, f"duplicate of {kept_ids[hit[0]]}"))
                    continue
                if cuts:
                    before = row["text"]
                    row["text"] = cut(before, cuts)
                    left = len(row["text"].split())
                    if left < sub.min_tokens_left:
                        stats.remove("substring_dedup", row["bytes_in"])
                        detail = f"{left} words left after cutting {len(cuts)} repeated span(s) < {sub.min_tokens_left}"
                        removed.add(removed_row(row, redact(before, cfg.redaction)[0], "substring_dedup", detail))
                        continue
                    stats.changes["substring_dedup.documents"] += 1
                    stats.changes["substring_dedup.spans"] += len(cuts)
                    stats.changes["substring_dedup.bytes"] += len(before.encode()) - len(row["text"].encode())
                text, counts = redact(row["text"], cfg.redaction)
                stats.redactions.update(counts)
                stats.keep(row["bytes_in"])
                kept.add({"id": row["id"], "text": text, "source": row["source"], "metadata": row["metadata"]})
    stats.check_balanced(f"dedup of shard {index}")
    return {"stats": stats.to_dict(), "id_rows_read": ids_read, "files_opened": drop_files.files_opened - opened}

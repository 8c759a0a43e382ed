"""Curation of one input shard, in two passes around a global exact-dedup decision.

Pass 1 (`filter_shard`) reads, normalizes and quality-filters one input file and returns
the dedup hash of each survivor. The driver then decides which survivors repeat an earlier
document anywhere in the corpus; pass 2 (`finalize_shard`) drops those and redacts PII.
Every dropped document goes to `removed/` with its reason, redacted like kept ones.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from infra.storage import atomic_path
from tasks.curation.config import CurationConfig
from tasks.curation.normalize import dedup_key, normalize_text
from tasks.curation.quality import quality_reason
from tasks.curation.reader import Document, Malformed, read_documents
from tasks.curation.redact import redact
from tasks.curation.stats import StageStats

CURATED_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("metadata", pa.string())]
)
WORK_SCHEMA = pa.schema(
    list(CURATED_SCHEMA) + [("bytes_in", pa.int64()), ("file", pa.string()), ("line", pa.int64()),
                            ("hash", pa.uint64())]
)
REMOVED_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("reason", pa.string()),
     ("detail", pa.string()), ("file", pa.string()), ("line", pa.int64()), ("bytes", pa.int64())]
)


@dataclass
class ShardPaths:
    curated: Path
    removed_filter: Path
    removed_dedup: Path
    work: Path

    @classmethod
    def for_shard(cls, curated_dir: Path, index: int) -> "ShardPaths":
        name = f"part-{index:05d}.parquet"
        return cls(
            curated=curated_dir / name,
            removed_filter=curated_dir / "removed" / f"filter-{name}",
            removed_dedup=curated_dir / "removed" / f"exact_dedup-{name}",
            work=curated_dir / "_work" / name,
        )


def text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(dedup_key(text).encode("utf-8"), digest_size=8).digest(), "little")


def _write(rows: list[dict[str, Any]], schema: pa.Schema, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


def _redacted(text: str, cfg: CurationConfig, stats: StageStats | None = None) -> str:
    out, counts = redact(
        text, emails=cfg.redact_emails, ips=cfg.redact_ips,
        email_token=cfg.email_token, ip_token=cfg.ip_token,
    )
    if stats is not None:
        stats.redactions.update(counts)
    return out


def filter_shard(path: Path, index: int, cfg: CurationConfig, curated_dir: Path) -> dict[str, Any]:
    """Pass 1 over one input file. Returns stats and the dedup hash of each survivor, in order."""
    paths = ShardPaths.for_shard(curated_dir, index)
    stats = StageStats()
    kept: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    examples: list[str] = []
    for item in read_documents(path, cfg.text_field, cfg.id_field):
        stats.add_in(item.bytes_in)
        if isinstance(item, Malformed):
            stats.remove("malformed", item.bytes_in)
            if len(examples) < 5:
                examples.append(f"{item.file}:{item.line}: {item.detail}")
            removed.append({"id": None, "text": _redacted(item.raw, cfg), "source": None,
                            "reason": "malformed", "detail": item.detail, "file": item.file,
                            "line": item.line, "bytes": item.bytes_in})
            continue
        text = normalize_text(item.text, cfg.normalization)
        reason = quality_reason(text, cfg.quality)
        if reason:
            stats.remove(reason, item.bytes_in)
            removed.append(_removed_row(item, _redacted(text, cfg), reason))
            continue
        stats.keep(item.bytes_in)
        row = asdict(item)
        row.update(text=text, hash=text_hash(text))
        kept.append(row)
    stats.check_balanced(f"filter {path}")
    _write(kept, WORK_SCHEMA, paths.work)
    _write(removed, REMOVED_SCHEMA, paths.removed_filter)
    return {
        "stats": stats.to_dict(),
        "hashes": np.array([r["hash"] for r in kept], dtype=np.uint64),
        "malformed_examples": examples,
    }


def _removed_row(doc: Document | dict[str, Any], text: str, reason: str, detail: str = "") -> dict[str, Any]:
    d = asdict(doc) if isinstance(doc, Document) else doc
    return {"id": d["id"], "text": text, "source": d["source"], "reason": reason, "detail": detail,
            "file": d["file"], "line": d["line"], "bytes": d["bytes_in"]}


def finalize_shard(index: int, drop_rows: list[int], cfg: CurationConfig, curated_dir: Path) -> dict[str, Any]:
    """Pass 2: drop this shard's exact duplicates, redact PII and write the curated shard."""
    paths = ShardPaths.for_shard(curated_dir, index)
    drop = set(drop_rows)
    stats = StageStats()
    kept: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    for i, row in enumerate(pq.read_table(paths.work).to_pylist()):
        stats.add_in(row["bytes_in"])
        if i in drop:
            stats.remove("exact_duplicate", row["bytes_in"])
            removed.append(_removed_row(row, _redacted(row["text"], cfg), "exact_duplicate"))
            continue
        stats.keep(row["bytes_in"])
        kept.append({"id": row["id"], "text": _redacted(row["text"], cfg, stats),
                     "source": row["source"], "metadata": row["metadata"]})
    stats.check_balanced(f"exact dedup of shard {index}")
    _write(kept, CURATED_SCHEMA, paths.curated)
    _write(removed, REMOVED_SCHEMA, paths.removed_dedup)
    paths.work.unlink()
    return {"stats": stats.to_dict()}


def find_exact_duplicates(hashes_per_shard: list[np.ndarray]) -> list[list[int]]:
    """Row indices to drop per shard: every repeat after the first occurrence in shard order."""
    seen: set[int] = set()
    drops: list[list[int]] = []
    for hashes in hashes_per_shard:
        shard_drops = []
        for i, h in enumerate(hashes.tolist()):
            if h in seen:
                shard_drops.append(i)
            else:
                seen.add(h)
        drops.append(shard_drops)
    return drops


def combine_steps(steps: dict[str, StageStats]) -> StageStats:
    """Stage totals from chained steps, checking each step takes exactly what the last kept."""
    names = list(steps)
    for prev, nxt in zip(names, names[1:]):
        if steps[prev].docs_kept != steps[nxt].docs_in:
            raise RuntimeError(
                f"step '{nxt}' received {steps[nxt].docs_in} documents but '{prev}' kept "
                f"{steps[prev].docs_kept}"
            )
    first, last = steps[names[0]], steps[names[-1]]
    total = StageStats(docs_in=first.docs_in, bytes_in=first.bytes_in,
                       docs_kept=last.docs_kept, bytes_kept=last.bytes_kept)
    for s in steps.values():
        total.removed_docs.update(s.removed_docs)
        total.removed_bytes.update(s.removed_bytes)
        total.redactions.update(s.redactions)
    total.check_balanced("curation")
    return total

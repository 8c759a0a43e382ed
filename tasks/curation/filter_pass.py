"""Pass 1 over one input file: every per-document decision, streamed.

Read -> (web input: URL filter -> main text -> language, tasks/curation/web/) -> normalize ->
the filters `curation.filters` lists, in its order (tasks/curation/filters/; by default the
heuristic rules, the fastText quality score, benchmark decontamination).
Survivors are written to a scratch shard together with their dedup keys (exact / near-exact)
and MinHash band keys, which the global dedup steps read by key range. Memory is bounded by
one row group, not by the file or the corpus.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tasks.curation.config import CurationConfig
from tasks.curation.filters.chain import DocumentFilter
from tasks.curation.keyed_files import EXACT_BAND, KEY_DTYPE, doc_id, write_keys
from tasks.curation.minhash import MinHasher, stable_hash64
from tasks.curation.normalize import dedup_key
from tasks.curation.output_files import REMOVED_SCHEMA, WORK_SCHEMA, CurationPaths, RowSink
from tasks.curation.ragged_files import write_ragged, write_strings
from tasks.curation.reader import Document, Malformed, is_web_input, read_documents
from tasks.curation.redact import redact
from tasks.curation.repair import key_text
from tasks.curation.shingles import normalized_words
from tasks.curation.stats import StageStats
from tasks.curation.web.front import PageRemoved, WebFront
from tasks.curation.web.language import LanguageId
from tasks.curation.web.pages import SkippedRecord, WebPage


def _merge_metadata(original: str, extra: dict[str, Any] | None) -> str:
    if not extra:
        return original
    meta = json.loads(original) if original else {}
    meta.update(extra)
    return json.dumps(meta, ensure_ascii=False)


def _language_of(metadata: str) -> str | None:
    """The language identification (or the input's own metadata) gave a document, if any."""
    if '"language"' not in metadata:  # most metadata has none: skip the parse
        return None
    lang = json.loads(metadata).get("language")
    return lang if isinstance(lang, str) else None


def removed_record(
    reason: str,
    detail: str,
    file: str,
    line: int,
    nbytes: int,
    text: str = "",
    id: str | None = None,
    source: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """A removed/ row (REMOVED_SCHEMA)."""
    return {
        "id": id,
        "text": text,
        "source": source,
        "reason": reason,
        "detail": detail,
        "file": file,
        "line": line,
        "bytes": nbytes,
        "url": url,
    }


def removed_row(d: dict[str, Any], text: str, reason: str, detail: str = "") -> dict[str, Any]:
    """The removed/ row of a document read from an input (WORK_SCHEMA fields)."""
    url = json.loads(d["metadata"]).get("url") if d.get("metadata") else None
    return removed_record(reason, detail, d["file"], d["line"], d["bytes_in"], text, d["id"], d["source"], url)


# Documents whose MinHash work is done together (DedupKeys): numpy's per-call cost is paid once
# a batch instead of once a document; their word lists are all a batch holds meanwhile.
DEDUP_BATCH = 512


class DedupKeys:
    """The keys the global dedup steps read for one shard: exact / near-exact hashes,
    MinHash band keys and shingle sets, and the document ids, one entry per kept document."""

    def __init__(self, cfg: CurationConfig, batch: int = DEDUP_BATCH):
        self.cfg, self.batch = cfg, batch
        self.hasher = MinHasher(cfg.minhash.shingle_size, cfg.minhash.bands, cfg.minhash.rows, cfg.minhash.seed)
        self.exact: list[tuple[int, int, int]] = []
        self.bands: list[np.ndarray] = []  # (batch, bands) band keys of each flushed batch
        self.shingle_sets: list[np.ndarray] = []
        self.ids: list[str] = []
        self._pending: list[list[str]] = []  # word lists whose MinHash keys are not yet computed

    def add(self, doc: int, text: str, doc_id_text: str) -> None:
        words = normalized_words(text)
        exact_key = stable_hash64(dedup_key(text))
        near_key = stable_hash64(" ".join(words)) if self.cfg.exact_dedup.near_exact else exact_key
        self.exact.append((near_key, exact_key, doc))
        self.ids.append(doc_id_text)
        if self.cfg.minhash.enabled:
            self._pending.append(words)
            if len(self._pending) >= self.batch:
                self._flush()

    def _flush(self) -> None:
        """The shingle sets and band keys of the pending documents, in their order."""
        if not self._pending:
            return
        flat, offsets = self.hasher.shingle_hashes_batch(self._pending)
        self.shingle_sets.extend(flat[lo:hi] for lo, hi in pairwise(offsets.tolist()))
        self.bands.append(self.hasher.band_keys_batch(self.hasher.signatures_of(flat, offsets)))
        self._pending = []

    def _records(self) -> np.ndarray:
        """KEY_DTYPE: one exact record per document, then one per document and band."""
        bands = self.cfg.minhash.bands if self.cfg.minhash.enabled else 0
        n = len(self.exact)
        exact = np.array(self.exact, dtype=np.uint64).reshape(n, 3)
        recs = np.empty(n * (1 + bands), dtype=KEY_DTYPE)
        recs["band"][:n], recs["key"][:n], recs["aux"][:n], recs["doc"][:n] = EXACT_BAND, *exact.T
        if bands:
            matrix = np.concatenate(self.bands) if self.bands else np.empty((0, bands), dtype=np.uint64)
            recs["band"][n:] = np.repeat(np.arange(bands, dtype=np.uint8), n)
            recs["key"][n:] = matrix.T.reshape(-1)  # band-major, as the band column
            recs["aux"][n:] = np.tile(exact[:, 0], bands)
            recs["doc"][n:] = np.tile(exact[:, 2], bands)
        return recs

    def write(self, paths: CurationPaths, index: int) -> None:
        self._flush()
        write_keys(self._records(), paths.keys(index))
        write_strings(self.ids, paths.doc_ids(index))
        if self.cfg.minhash.enabled:
            write_ragged(self.shingle_sets, paths.shingle_sets(index), np.dtype(np.uint64))


class _ShardPass:
    """One input file's filter pass: its sinks and counts, and one handler per kind of item
    the reader yields (_HANDLERS). A handler either settles the item itself (counted and
    written to removed/) or returns the document the filter chain then decides on."""

    def __init__(
        self,
        path: Path,
        index: int,
        cfg: CurationConfig,
        sinks: tuple[RowSink, RowSink],
        quality_model: Path | None,
        decontam_index: Path | None,
    ):
        self.cfg, self.index = cfg, index
        self.kept, self.removed = sinks
        self.stats = StageStats()
        self.examples: list[str] = []
        web = is_web_input(path)
        self.check = DocumentFilter(cfg, quality_model, decontam_index, web_input=web)
        self.keys = DedupKeys(cfg)
        self.front = WebFront(cfg.web) if web else None
        # JSONL/Parquet documents get language identification only with web.language.all_inputs.
        language = cfg.web.language
        self.language = LanguageId(language) if not web and language.enabled and language.all_inputs else None

    def _remove(self, reason: str, nbytes: int, row: dict[str, Any]) -> None:
        self.stats.remove(reason, nbytes)
        self.removed.add(row)

    def _redacted(self, text: str) -> str:
        return redact(text, self.cfg.redaction)[0]

    def malformed(self, item: Malformed) -> None:
        if len(self.examples) < 5:
            self.examples.append(f"{item.file}:{item.line}: {item.detail}")
        row = removed_record(item.reason, item.detail, item.file, item.line, item.bytes_in, self._redacted(item.raw))
        self._remove(item.reason, item.bytes_in, row)

    def skipped(self, item: SkippedRecord) -> None:
        detail = f"{item.record_type} record"
        row = removed_record("not_a_page", detail, item.file, item.offset, item.bytes_in, source="web", url=item.url)
        self._remove("not_a_page", item.bytes_in, row)

    def page(self, page: WebPage) -> Document | None:
        assert self.front is not None  # web pages come only from web input, which made the front end
        outcome = self.front(page)
        if not isinstance(outcome, PageRemoved):
            return outcome
        text = self._redacted(outcome.text)
        row = removed_record(
            outcome.reason, outcome.detail, page.file, page.offset, page.bytes_in, text, page.record_id, "web", page.url
        )
        self._remove(outcome.reason, page.bytes_in, row)
        return None

    def document(self, doc: Document) -> Document | None:
        if self.language is None:
            return doc
        lang, prob, why = self.language.verdict(doc.text)
        if why:
            self._remove(
                "language", doc.bytes_in, removed_row(dict(vars(doc)), self._redacted(doc.text), "language", why)
            )
            return None
        doc.metadata = _merge_metadata(doc.metadata, {"language": lang, "language_score": round(prob, 4)})
        return doc

    def filter(self, doc: Document) -> None:
        """The filter chain's verdict on a document: kept (with its dedup keys) or removed."""
        verdict = self.check(doc.text, _language_of(doc.metadata))
        row = dict(vars(doc))  # its fields are plain values: no deep copy (dataclasses.asdict) needed
        if verdict.reason:
            text = self._redacted(verdict.text)
            self._remove(verdict.reason, doc.bytes_in, removed_row(row, text, verdict.reason, verdict.detail))
            return
        self.keys.add(doc_id(self.index, self.kept.count), verdict.dedup_text, doc.id)
        row.update(text=verdict.text, metadata=_merge_metadata(row["metadata"], verdict.metadata))
        self.kept.add(row)
        self.stats.keep(doc.bytes_in)


# What the reader yields -> its handler: a document to filter, or None when it was settled.
_HANDLERS: dict[type, Callable[[_ShardPass, Any], Document | None]] = {
    Malformed: _ShardPass.malformed,
    SkippedRecord: _ShardPass.skipped,
    WebPage: _ShardPass.page,
    Document: _ShardPass.document,
}


def filter_shard(
    path: Path,
    index: int,
    cfg: CurationConfig,
    curated_dir: Path,
    quality_model: Path | None = None,
    decontam_index: Path | None = None,
) -> dict[str, Any]:
    """Filter one input file into its scratch shard and key files; returns its stats."""
    paths = CurationPaths(curated_dir)
    with (
        RowSink(paths.filtered(index), WORK_SCHEMA) as kept,
        RowSink(paths.removed_filter(index), REMOVED_SCHEMA) as removed,
    ):
        shard = _ShardPass(path, index, cfg, (kept, removed), quality_model, decontam_index)
        items = read_documents(
            path, cfg.text_field, cfg.id_field, cfg.web.extraction.max_page_bytes, cfg.max_record_bytes
        )
        for item in items:
            shard.stats.add_in(item.bytes_in)
            doc = _HANDLERS[type(item)](shard, item)
            if doc is not None:
                shard.filter(doc)
    stats = shard.stats
    stats.changes.update(shard.check.changes)
    stats.check_balanced(f"filter {path}")
    shard.keys.write(paths, index)
    return {
        "stats": stats.to_dict(),
        "malformed_examples": shard.examples,
        "kept": stats.docs_kept,
        "languages": dict(shard.front.languages) if shard.front is not None else {},
    }


def reference_shard(path: Path, index: int, cfg: CurationConfig, curated_dir: Path) -> dict[str, Any]:
    """Dedup keys of an earlier run's curated shard, so this run's documents are deduplicated
    against it. Its documents take part in the dedup decisions (as the first in input order,
    they are the ones kept) but are not filtered again, counted or written out."""
    paths = CurationPaths(curated_dir)
    keys = DedupKeys(cfg)
    rows = 0
    with RowSink(paths.filtered(index), WORK_SCHEMA) as scratch:
        source = pq.ParquetFile(path)
        for group in range(source.num_row_groups):
            for row in source.read_row_group(group, columns=["id", "text", "source", "metadata"]).to_pylist():
                keys.add(doc_id(index, scratch.count), key_text(row["text"]), row["id"] or "")
                scratch.add({**row, "bytes_in": len(row["text"].encode()), "file": str(path), "line": rows})
                rows += 1
    keys.write(paths, index)
    return {"reference": str(path), "docs": rows}

"""Pass 1 over one input file: every per-document decision, streamed.

Read -> (web input: URL filter -> main text -> language, tasks/curation/web/) -> normalize ->
heuristic rules (Gopher, C4, FineWeb) -> fastText quality score -> benchmark decontamination.
Survivors are written to a scratch shard together with their dedup keys (exact / near-exact)
and MinHash band keys, which the global dedup steps read by key range. Memory is bounded by
one row group, not by the file or the corpus.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tasks.curation.config import CurationConfig
from tasks.curation.decontam import Decontaminator, load_index
from tasks.curation.dedup import BAND_DTYPE, EXACT_DTYPE
from tasks.curation.keyed_files import doc_id, write_sorted
from tasks.curation.minhash import MinHasher, stable_hash64
from tasks.curation.normalize import dedup_key, normalize_text
from tasks.curation.output_files import REMOVED_SCHEMA, WORK_SCHEMA, CurationPaths, RowSink
from tasks.curation.quality_model import QualityScorer
from tasks.curation.reader import Malformed, is_web_input, read_documents
from tasks.curation.redact import redact
from tasks.curation.repair import fold_repaired, key_text, repair_text
from tasks.curation.rules import apply_heuristics
from tasks.curation.shingles import normalized_words
from tasks.curation.similarity import write_shingle_sets
from tasks.curation.stats import StageStats
from tasks.curation.web.front import PageRemoved, WebFront
from tasks.curation.web.language import LanguageId
from tasks.curation.web.pages import SkippedRecord, WebPage


@dataclass
class Verdict:
    text: str
    reason: str | None = None
    detail: str = ""
    metadata: dict[str, Any] | None = None
    # What the dedup keys are taken from: the repaired key form (repair.key_text) of the
    # normalized text before C4's line removals. Two
    # copies of an article that differ only in line breaks (one reflowed onto a single line,
    # or extracted from two sites' HTML) lose different lines to those rules, which would push
    # their signatures apart; their words before the edits are the same.
    dedup_text: str = ""


class DocumentFilter:
    """The per-document steps, with their models loaded once per task."""

    def __init__(
        self,
        cfg: CurationConfig,
        quality_model: Path | None,
        decontam_index: Path | None,
        web_input: bool = False,
    ):
        self.cfg = cfg
        self.repair = cfg.repair_text if cfg.repair_text is not None else web_input
        self.scorer = QualityScorer(quality_model) if quality_model else None
        self.decontam = (
            Decontaminator(load_index(decontam_index, cfg.decontamination.ngram), cfg.decontamination.ngram)
            if decontam_index
            else None
        )
        self.changes: Counter[str] = Counter()

    def __call__(self, text: str, language: str | None = None) -> Verdict:
        """`language`: the document's identified language, which the heuristic rules use."""
        cfg = self.cfg
        # Repair before normalizing: normalize_text removes C1 controls, part of some mojibake.
        repaired = repair_text(text)
        changed = repaired != text
        text = normalize_text(repaired if self.repair else text, cfg.normalization)
        if not text:
            return Verdict(text, "empty")
        outcome = apply_heuristics(text, cfg.heuristics, language)
        self.changes.update(outcome.changes)
        if outcome.reason:
            return Verdict(outcome.text, outcome.reason, outcome.detail)
        if not outcome.text.strip():  # every line removed, with the counting rules skipped (zh, ja...)
            return Verdict(text, "empty", "no text left after the line rules")
        # Keys are repaired whether or not the kept text is, and taken before C4's line edits.
        keys = fold_repaired(text if self.repair else normalize_text(repaired, cfg.normalization))
        text = outcome.text
        meta: dict[str, Any] = {}
        if self.scorer is not None:
            score = self.scorer.score(text)
            meta["quality_score"] = round(float(score), 4)
            if score < cfg.quality_classifier.threshold:
                return Verdict(text, "quality_classifier", f"P(high quality) {score:.3f}")
        if self.decontam is not None:
            bench = self.decontam.match(keys, keyed=True)
            if bench is not None:
                if cfg.decontamination.action == "remove":
                    return Verdict(text, "decontaminated", f"shares a {cfg.decontamination.ngram}-gram with {bench}")
                meta["contaminated"] = bench
                self.changes["decontam.flagged"] += 1
        if self.repair and changed:
            self.changes["repair.documents"] += 1
        return Verdict(text, metadata=meta, dedup_text=keys)


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


class DedupKeys:
    """The keys the global dedup steps read for one shard: exact / near-exact hashes,
    MinHash band keys and shingle sets, one entry per kept document."""

    def __init__(self, cfg: CurationConfig):
        self.cfg = cfg
        self.hasher = MinHasher(cfg.minhash.shingle_size, cfg.minhash.bands, cfg.minhash.rows, cfg.minhash.seed)
        self.exact: list[tuple[int, int, int]] = []
        self.bands: list[np.ndarray] = []
        self.shingle_sets: list[np.ndarray] = []

    def add(self, doc: int, text: str) -> None:
        words = normalized_words(text)
        exact_key = stable_hash64(dedup_key(text))
        near_key = stable_hash64(" ".join(words)) if self.cfg.exact_dedup.near_exact else exact_key
        self.exact.append((near_key, exact_key, doc))
        if self.cfg.minhash.enabled:
            sh = self.hasher.shingle_hashes(words)
            self.shingle_sets.append(sh)
            self.bands.append(self.hasher.band_keys(self.hasher.signature_of(sh)))

    def write(self, paths: CurationPaths, index: int) -> None:
        cfg = self.cfg
        records = np.array(self.exact, dtype=EXACT_DTYPE) if self.exact else np.empty(0, dtype=EXACT_DTYPE)
        write_sorted(records, "key", paths.exact_keys(index))
        if not cfg.minhash.enabled:
            return
        write_shingle_sets(self.shingle_sets, paths.shingle_sets(index))
        matrix = np.stack(self.bands) if self.bands else np.empty((0, cfg.minhash.bands), dtype=np.uint64)
        docs = np.array([e[2] for e in self.exact], dtype=np.uint64)
        for b in range(cfg.minhash.bands):
            recs = np.empty(len(matrix), dtype=BAND_DTYPE)
            recs["key"], recs["doc"] = matrix[:, b], docs
            write_sorted(recs, "key", paths.band_keys(b, index))


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
    stats = StageStats()
    check = DocumentFilter(cfg, quality_model, decontam_index, web_input=is_web_input(path))
    keys = DedupKeys(cfg)
    examples: list[str] = []
    front = WebFront(cfg.web) if is_web_input(path) else None
    language = (
        LanguageId(cfg.web.language)
        if (front is None and cfg.web.language.enabled and cfg.web.language.all_inputs)
        else None
    )
    with (
        RowSink(paths.filtered(index), WORK_SCHEMA) as kept,
        RowSink(paths.removed_filter(index), REMOVED_SCHEMA) as removed,
    ):
        items = read_documents(
            path, cfg.text_field, cfg.id_field, cfg.web.extraction.max_page_bytes, cfg.max_record_bytes
        )
        for item in items:
            stats.add_in(item.bytes_in)
            if isinstance(item, Malformed):
                stats.remove(item.reason, item.bytes_in)
                if len(examples) < 5:
                    examples.append(f"{item.file}:{item.line}: {item.detail}")
                removed.add(
                    removed_record(
                        item.reason,
                        item.detail,
                        item.file,
                        item.line,
                        item.bytes_in,
                        redact(item.raw, cfg.redaction)[0],
                    )
                )
                continue
            if isinstance(item, SkippedRecord):
                stats.remove("not_a_page", item.bytes_in)
                removed.add(
                    removed_record(
                        "not_a_page",
                        f"{item.record_type} record",
                        item.file,
                        item.offset,
                        item.bytes_in,
                        source="web",
                        url=item.url,
                    )
                )
                continue
            if isinstance(item, WebPage):
                page = item
                assert front is not None  # web pages come only from web input, which made the front end
                outcome = front(page)
                if isinstance(outcome, PageRemoved):
                    stats.remove(outcome.reason, page.bytes_in)
                    removed.add(
                        removed_record(
                            outcome.reason,
                            outcome.detail,
                            page.file,
                            page.offset,
                            page.bytes_in,
                            redact(outcome.text, cfg.redaction)[0],
                            page.record_id,
                            "web",
                            page.url,
                        )
                    )
                    continue
                doc = outcome
            else:
                doc = item
                if language is not None:  # JSONL/Parquet documents, with web.language.all_inputs
                    lang, prob, why = language.verdict(doc.text)
                    if why:
                        stats.remove("language", doc.bytes_in)
                        removed.add(removed_row(asdict(doc), redact(doc.text, cfg.redaction)[0], "language", why))
                        continue
                    doc.metadata = _merge_metadata(doc.metadata, {"language": lang, "language_score": round(prob, 4)})
            verdict = check(doc.text, _language_of(doc.metadata))
            row = asdict(doc)
            if verdict.reason:
                stats.remove(verdict.reason, doc.bytes_in)
                removed.add(removed_row(row, redact(verdict.text, cfg.redaction)[0], verdict.reason, verdict.detail))
                continue
            keys.add(doc_id(index, kept.count), verdict.dedup_text)
            row.update(text=verdict.text, metadata=_merge_metadata(row["metadata"], verdict.metadata))
            kept.add(row)
            stats.keep(doc.bytes_in)
    stats.changes.update(check.changes)
    stats.check_balanced(f"filter {path}")
    keys.write(paths, index)
    return {
        "stats": stats.to_dict(),
        "malformed_examples": examples,
        "kept": stats.docs_kept,
        "languages": dict(front.languages) if front is not None else {},
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
                keys.add(doc_id(index, scratch.count), key_text(row["text"]))
                scratch.add({**row, "bytes_in": len(row["text"].encode()), "file": str(path), "line": rows})
                rows += 1
    keys.write(paths, index)
    return {"reference": str(path), "docs": rows}

"""The per-document part of the filter pass: repair and normalize a document's text, then
run the configured filters over it in order; the first that removes it names the reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.curation.config import CurationConfig
from tasks.curation.filters.registry import build_chain
from tasks.curation.filters.step import FilterDoc, FilterSetup
from tasks.curation.normalize import normalize_text
from tasks.curation.repair import fold_repaired, repair_text


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
        self.changes: Counter[str] = Counter()
        self.steps = build_chain(cfg.filters, FilterSetup(cfg, quality_model, decontam_index, self.changes))

    def __call__(self, text: str, language: str | None = None) -> Verdict:
        """`language`: the document's identified language, which the heuristic rules use."""
        # Repair before normalizing: normalize_text removes C1 controls, part of some mojibake.
        repaired = repair_text(text)
        changed = repaired != text
        text = normalize_text(repaired if self.repair else text, self.cfg.normalization)
        if not text:
            return Verdict(text, "empty")
        doc = FilterDoc(text, language, lambda: self._key_text(text, repaired))
        for step in self.steps:
            removal = step.check(doc)
            if removal is not None:
                return Verdict(doc.text, removal.reason, removal.detail)
        if self.repair and changed:
            self.changes["repair.documents"] += 1
        return Verdict(doc.text, metadata=doc.metadata, dedup_text=doc.keys)

    def _key_text(self, normalized: str, repaired: str) -> str:
        # Keys are repaired whether or not the kept text is, and taken before any filter's edits.
        return fold_repaired(normalized if self.repair else normalize_text(repaired, self.cfg.normalization))

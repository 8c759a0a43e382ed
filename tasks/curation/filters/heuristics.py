"""The heuristic rules (Gopher, boilerplate, C4, FineWeb; tasks/curation/rules/) as one filter.

The rules' own order, and their per-language settings, live in tasks/curation/rules/: they
share per-document work (the text's segments, the lines C4 kept), so they run as one step.
"""

from __future__ import annotations

from tasks.curation.filters.step import DocumentStep, FilterDoc, Removal
from tasks.curation.rules import apply_heuristics


class HeuristicsFilter(DocumentStep):
    name = "heuristics"

    def check(self, doc: FilterDoc) -> Removal | None:
        outcome = apply_heuristics(doc.text, self.cfg.heuristics, doc.language)
        # Counted for removed documents too: the rules skipped for a language, whatever the verdict.
        self.changes.update(outcome.changes)
        if outcome.reason:
            return Removal(outcome.reason, outcome.detail)
        if not outcome.text.strip():  # every line removed, with the counting rules skipped (zh, ja...)
            return Removal("empty", "no text left after the line rules")
        doc.text = outcome.text
        return None

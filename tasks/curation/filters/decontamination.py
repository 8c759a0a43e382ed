"""Benchmark decontamination as a filter: a document sharing an n-gram with a benchmark's
test items is removed, or only flagged in its metadata (decontamination.action)."""

from __future__ import annotations

from tasks.curation.decontam import Decontaminator, load_index
from tasks.curation.filters.step import DocumentStep, FilterDoc, FilterSetup, Removal


class DecontaminationFilter(DocumentStep):
    name = "decontamination"

    def __init__(self, setup: FilterSetup):
        super().__init__(setup)
        assert setup.decontam_index is not None  # enabled() admits only a run with an index
        n = self.cfg.decontamination.ngram
        self.matcher = Decontaminator(load_index(setup.decontam_index, n), n)

    @classmethod
    def enabled(cls, setup: FilterSetup) -> bool:
        # The flow builds an index only when curation.decontamination is enabled.
        return setup.decontam_index is not None

    def check(self, doc: FilterDoc) -> Removal | None:
        # Matched on the dedup keys: repaired and taken before C4's line edits, like the index.
        bench = self.matcher.match(doc.keys, keyed=True)
        if bench is None:
            return None
        if self.cfg.decontamination.action == "remove":
            return Removal("decontaminated", f"shares a {self.cfg.decontamination.ngram}-gram with {bench}")
        doc.metadata["contaminated"] = bench
        self.changes["decontam.flagged"] += 1
        return None

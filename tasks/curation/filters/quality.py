"""The fastText quality classifier as a filter: documents scored below the threshold go."""

from __future__ import annotations

from tasks.curation.filters.step import DocumentStep, FilterDoc, FilterSetup, Removal
from tasks.curation.quality_model import QualityScorer


class QualityFilter(DocumentStep):
    name = "quality_classifier"

    def __init__(self, setup: FilterSetup):
        super().__init__(setup)
        assert setup.quality_model is not None  # enabled() admits only a run with a model
        self.scorer = QualityScorer(setup.quality_model)

    @classmethod
    def enabled(cls, setup: FilterSetup) -> bool:
        # The flow passes a model only when curation.quality_classifier is enabled.
        return setup.quality_model is not None

    def check(self, doc: FilterDoc) -> Removal | None:
        score = self.scorer.score(doc.text)
        doc.metadata["quality_score"] = round(float(score), 4)
        if score < self.cfg.quality_classifier.threshold:
            return Removal("quality_classifier", f"P(high quality) {score:.3f}")
        return None

"""Heuristic document quality rules: Gopher repetition and quality (Rae et al., 2021), C4
(Raffel et al., 2020) and FineWeb (Penedo et al., 2024), run in that order, as FineWeb's
pipeline runs them. The first failing rule names the reason a document is dropped; the
reason names are stable because removal statistics are counted by them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from tasks.curation.rules import c4, fineweb, gopher
from tasks.curation.rules.c4 import C4Config
from tasks.curation.rules.fineweb import FineWebConfig
from tasks.curation.rules.gopher import GopherQualityConfig, GopherRepetitionConfig
from tasks.curation.rules.text import Segments

__all__ = [
    "C4Config",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "HeuristicsConfig",
    "RuleOutcome",
    "apply_heuristics",
    "reason_names",
]


class HeuristicsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    c4: C4Config = C4Config()
    fineweb: FineWebConfig = FineWebConfig()


@dataclass
class RuleOutcome:
    """A document's verdict. A dropped document keeps its input text and reports no
    changes, so change counts describe kept documents only."""

    text: str
    reason: str | None = None
    detail: str = ""
    changes: Counter[str] = field(default_factory=Counter)


def reason_names(cfg: HeuristicsConfig) -> list[str]:
    """Every reason apply_heuristics can return under `cfg`, in checking order."""
    return [*gopher.repetition_reasons(cfg.gopher_repetition), *gopher.quality_reasons(), *c4.REASONS, *fineweb.REASONS]


def apply_heuristics(text: str, cfg: HeuristicsConfig) -> RuleOutcome:
    """Run enabled filters in order gopher_repetition, gopher_quality, c4, fineweb; first failing rule wins."""
    seg = Segments(text)
    if cfg.gopher_repetition.enabled and (failure := gopher.check_repetition(seg, cfg.gopher_repetition)):
        return RuleOutcome(text, *failure)
    if cfg.gopher_quality.enabled and (failure := gopher.check_quality(seg, cfg.gopher_quality)):
        return RuleOutcome(text, *failure)
    changes: Counter[str] = Counter()
    if cfg.c4.enabled:
        result = c4.apply_c4(text, cfg.c4)
        if result.failure:
            return RuleOutcome(text, *result.failure)
        changes = result.changes
        if result.text != text:
            seg = Segments(result.text)
    if cfg.fineweb.enabled and (failure := fineweb.check_fineweb(seg, cfg.fineweb)):
        return RuleOutcome(text, *failure)
    return RuleOutcome(seg.text, None, "", changes)

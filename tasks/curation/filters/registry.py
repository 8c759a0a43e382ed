"""Filter name -> filter class, and the order the filter pass runs them in by default.

A new filter is one class (a DocumentStep subclass, in its own file) and one entry in
FILTERS; `curation.filters` then places it. Names are checked against FILTERS when the
config is validated; workers build the chain from it too, so an entry has to be made
when this module is imported, not later in the driver alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from tasks.curation.filters.decontamination import DecontaminationFilter
from tasks.curation.filters.heuristics import HeuristicsFilter
from tasks.curation.filters.quality import QualityFilter
from tasks.curation.filters.step import DocumentStep, FilterSetup

FILTERS: dict[str, type[DocumentStep]] = {
    cls.name: cls for cls in (HeuristicsFilter, QualityFilter, DecontaminationFilter)
}

# The cheap rules first, so the classifier scores only what they keep, and the text it
# scores is the one C4's line removals left; decontamination last, on what would be kept.
DEFAULT_FILTERS: tuple[str, ...] = ("heuristics", "quality_classifier", "decontamination")


def check_filter_names(names: Iterable[str]) -> list[str]:
    """`names` as a list, or ValueError naming the unknown or repeated ones and the known ones."""
    names = list(names)
    unknown = [n for n in names if n not in FILTERS]
    if unknown:
        raise ValueError(f"unknown filter(s) {unknown}; known filters: {', '.join(sorted(FILTERS))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        # A filter listed twice would run twice and count its changes twice.
        raise ValueError(f"filter(s) {repeated} listed more than once; list each filter once")
    return names


def build_chain(names: Iterable[str], setup: FilterSetup) -> list[DocumentStep]:
    """The filters `names` lists, in that order, less those their own config switches off."""
    return [FILTERS[n](setup) for n in names if FILTERS[n].enabled(setup)]

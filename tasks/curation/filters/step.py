"""The interface every per-document filter implements, and what it is given and gives back.

A filter is a class with a `name` (the word `curation.filters` lists it by) and one method,
`check`, that looks at one document and either keeps it (returns None) or names why it goes.
A filter may edit the document it keeps (C4's line removals do) and add to its metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # the config imports the registry, which imports this module
    from tasks.curation.config import CurationConfig


@dataclass
class Removal:
    """Why a filter removed a document: the reason it is counted under in stats.json and
    removed/, and a human-readable detail."""

    reason: str
    detail: str = ""


class FilterDoc:
    """One document as the filters see it, after normalization."""

    def __init__(self, text: str, language: str | None, key_text: Callable[[], str]):
        self.text = text  # the text as it stands; a filter that edits it writes it back here
        self.language = language  # the identified language (None: not identified)
        self.metadata: dict[str, Any] = {}  # merged into a kept document's metadata
        self._key_text = key_text

    @cached_property
    def keys(self) -> str:
        """The text the dedup and decontamination keys are taken from. Computed on first use:
        most removed documents never need it."""
        return self._key_text()


@dataclass
class FilterSetup:
    """What a filter is built from, once per filter task."""

    cfg: CurationConfig
    quality_model: Path | None  # None: no quality classifier this run
    decontam_index: Path | None  # None: no decontamination this run
    # One counter shared by the chain: what each filter counts ends up in the step's `changes`.
    changes: Counter[str]


class DocumentStep(ABC):
    """A per-document filter. Subclasses set `name` and implement `check`; one that its own
    config section can switch off says so in `enabled`."""

    name: ClassVar[str]

    def __init__(self, setup: FilterSetup):
        self.cfg = setup.cfg
        self.changes = setup.changes

    @classmethod
    def enabled(cls, setup: FilterSetup) -> bool:
        """Whether the filter runs at all this time; a listed filter that is off is skipped."""
        return True

    @abstractmethod
    def check(self, doc: FilterDoc) -> Removal | None:
        """None keeps the document (possibly edited); a Removal removes it with `doc.text` as
        the text removed/ shows."""

"""The corpora Crucible builds itself, by the name `curation.input_path` gives them.

The one place that knows these names: curation builds the corpus by name, preflight checks
it can be built before anything starts, and the stage key uses the name as the input's
identity (the sources are pinned, so the same name builds the same files).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuiltinCorpus:
    name: str
    task_name: str  # the Prefect task that builds it, as the UI shows it
    module: str  # imported when used: the web crawl's builder pulls in FastWARC
    build_function: str
    check_function: str

    def _function(self, name: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), name)

    def build(self) -> Path:
        """Build the corpus (once per cache folder) and return the folder it is in."""
        return Path(self._function(self.build_function)())

    def check_available(self) -> None:
        """Raise CorpusUnavailable if it is not built and its sources cannot be fetched."""
        self._function(self.check_function)()


BUILTIN_CORPORA = {
    c.name: c
    for c in (
        BuiltinCorpus("demo", "build-demo-corpus", "tasks.corpus.demo", "build_demo_corpus", "check_available"),
        BuiltinCorpus(
            "web-demo", "build-web-demo-crawl", "tasks.corpus.web_demo", "build_web_demo", "check_web_demo_available"
        ),
    )
}


def builtin_corpus(input_path: str) -> BuiltinCorpus | None:
    """The built-in corpus `input_path` names, or None for a path of the user's."""
    return BUILTIN_CORPORA.get(input_path)

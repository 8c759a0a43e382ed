"""Document accounting: every document in is either kept or removed for a named reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any


@dataclass
class StageStats:
    docs_in: int = 0
    bytes_in: int = 0
    docs_kept: int = 0
    bytes_kept: int = 0
    removed_docs: Counter[str] = field(default_factory=Counter)
    removed_bytes: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    # Edits to kept documents that do not remove them (e.g. C4 lines dropped, flagged docs).
    changes: Counter[str] = field(default_factory=Counter)

    def add_in(self, nbytes: int) -> None:
        self.docs_in += 1
        self.bytes_in += nbytes

    def keep(self, nbytes: int) -> None:
        self.docs_kept += 1
        self.bytes_kept += nbytes

    def remove(self, reason: str, nbytes: int) -> None:
        self.removed_docs[reason] += 1
        self.removed_bytes[reason] += nbytes

    def merge(self, other: StageStats) -> StageStats:
        self.docs_in += other.docs_in
        self.bytes_in += other.bytes_in
        self.docs_kept += other.docs_kept
        self.bytes_kept += other.bytes_kept
        self.removed_docs.update(other.removed_docs)
        self.removed_bytes.update(other.removed_bytes)
        self.redactions.update(other.redactions)
        self.changes.update(other.changes)
        return self

    def check_balanced(self, where: str) -> None:
        """Raise if documents or bytes went missing between input and output."""
        removed, removed_b = sum(self.removed_docs.values()), sum(self.removed_bytes.values())
        if self.docs_in != self.docs_kept + removed or self.bytes_in != self.bytes_kept + removed_b:
            raise RuntimeError(
                f"{where}: accounting mismatch: {self.docs_in} docs in != {self.docs_kept} kept + "
                f"{removed} removed, or {self.bytes_in} bytes in != {self.bytes_kept} + {removed_b}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "docs_in": self.docs_in,
            "bytes_in": self.bytes_in,
            "docs_kept": self.docs_kept,
            "bytes_kept": self.bytes_kept,
            "docs_removed": sum(self.removed_docs.values()),
            "bytes_removed": sum(self.removed_bytes.values()),
            "removed_by_reason": {
                r: {"docs": self.removed_docs[r], "bytes": self.removed_bytes[r]} for r in sorted(self.removed_docs)
            },
            "redactions": dict(sorted(self.redactions.items())),
            "changes": dict(sorted(self.changes.items())),
        }

    @classmethod
    def total(cls, parts: Iterable[dict[str, Any]]) -> StageStats:
        """The sum of per-shard stats as `to_dict` wrote them."""
        out = cls()
        for part in parts:
            out.merge(cls.from_dict(part))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        by_reason = d.get("removed_by_reason", {})
        return cls(
            docs_in=d["docs_in"],
            bytes_in=d["bytes_in"],
            docs_kept=d["docs_kept"],
            bytes_kept=d["bytes_kept"],
            removed_docs=Counter({r: v["docs"] for r, v in by_reason.items()}),
            removed_bytes=Counter({r: v["bytes"] for r, v in by_reason.items()}),
            redactions=Counter(d.get("redactions", {})),
            changes=Counter(d.get("changes", {})),
        )


def combine_steps(steps: dict[str, StageStats]) -> StageStats:
    """Stage totals from chained steps, checking each step takes exactly what the last kept."""
    names = list(steps)
    for prev, nxt in pairwise(names):
        if steps[prev].docs_kept != steps[nxt].docs_in:
            raise RuntimeError(
                f"step '{nxt}' received {steps[nxt].docs_in} documents but '{prev}' kept {steps[prev].docs_kept}"
            )
    first, last = steps[names[0]], steps[names[-1]]
    total = StageStats(
        docs_in=first.docs_in, bytes_in=first.bytes_in, docs_kept=last.docs_kept, bytes_kept=last.bytes_kept
    )
    for s in steps.values():
        total.removed_docs.update(s.removed_docs)
        total.removed_bytes.update(s.removed_bytes)
        total.redactions.update(s.redactions)
        total.changes.update(s.changes)
    total.check_balanced("curation")
    return total

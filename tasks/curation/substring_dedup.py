"""Exact-substring dedup: a span of text that occurred earlier in the corpus is cut from every
later document (Lee et al. 2022, "Deduplicating Training Data Makes Language Models Better").

Document dedup leaves boilerplate alone: a "Related articles" block, a footer or a licence
notice repeated on thousands of distinct pages keeps every copy. Here the kept documents of a
group of shards are laid end to end as one sequence of whitespace tokens (a separator
between documents, so no match crosses one), and pydivsufsort's longest-previous-factor
array gives, for each position, the length of the longest run of tokens starting there that
also starts somewhere earlier (both from its suffix array, in linear time). Every run of at
least `min_tokens` tokens that occurred before is marked; what stays is each span's first
occurrence, in input order, as document dedup keeps the first document.

Tokens are whitespace-separated words, compared exactly: the text is cut at word boundaries,
and a span that reappears with other spacing or line breaks still matches. Lee et al. count
spans in BPE tokens (50 of them is about 35-40 words); tokens here are words, so the
default of 50 is a little stricter.

Memory and speed: about 13 times the group's text at the peak (the words' ids, the
suffix array and the factor array pydivsufsort builds from them, the vocabulary), measured
at 1.25 GB for 93 MB of documentation text (13 M words), at 11 MB/s on one core. The
default `max_group_mb` of 128 bounds a worker near 1.7 GB. A span whose copies fall in
different groups is not found: groups are consecutive shards, so raise `max_group_mb` (with
memory to match), or make fewer, larger shards, to dedup across more of the corpus. In an
incremental run only the new shards are grouped: boilerplate repeated across runs keeps
one copy per run.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydivsufsort import longest_previous_factor

from infra.core.storage import atomic_path

# One row per cut: shard row, first token, token after the last (of the document's tokens).
SPAN_DTYPE = np.dtype([("row", "<u4"), ("start", "<u4"), ("end", "<u4")])
_TOKEN = re.compile(r"\S+")


class SubstringDedupConfig(BaseModel):
    """Exact-substring dedup of the documents that document dedup kept; off by default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Cut repeated spans with suffix arrays.")
    min_tokens: int = Field(50, ge=2, description="Shortest repeated span that is cut, in whitespace tokens.")
    min_tokens_left: int = Field(
        50,
        ge=0,
        description="A document left with fewer tokens is removed as `substring_dedup` (Gopher's min_words).",
    )
    max_group_mb: int = Field(
        128,
        ge=1,
        description="Text per suffix array (consecutive shards): bounds a worker's memory, about 13x this.",
    )

    @model_validator(mode="after")
    def _first_copies_survive(self) -> SubstringDedupConfig:
        # A document holding a span's first occurrence keeps at least min_tokens words, so it
        # is never removed as too short while later copies of that span are cut.
        if self.min_tokens_left > self.min_tokens:
            raise ValueError(
                f"min_tokens_left ({self.min_tokens_left}) exceeds min_tokens ({self.min_tokens}): a document "
                f"holding the first copy of a span could be removed while its later copies are cut; "
                f"lower min_tokens_left or raise min_tokens"
            )
        return self


def groups(sizes: list[int], max_bytes: int) -> list[list[int]]:
    """Consecutive shard indices into groups of at most max_bytes (a larger shard stands alone)."""
    out: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not out or total + size > max_bytes:
            out.append([])
            total = 0
        out[-1].append(i)
        total += size
    return out


def repeated_token_mask(tokens: np.ndarray, doc_ends: np.ndarray, min_tokens: int) -> np.ndarray:
    """True at each token inside a run of >= min_tokens tokens that occurred earlier.

    `tokens`: int32 token ids of all documents, each document followed by a separator id
    that no word has; `doc_ends[i]`: the position of document i's separator.
    """
    n = len(tokens)
    if n == 0:
        return np.zeros(0, dtype=bool)
    lpf = longest_previous_factor(tokens)
    starts = np.flatnonzero(lpf >= min_tokens)
    # The shared separator lets a match run on into the next document: cut it at its own
    # document's end, then ask again for min_tokens (any prefix of a repeat is a repeat).
    ends = np.minimum(starts + lpf[starts].astype(np.int64), doc_ends[np.searchsorted(doc_ends, starts)])
    del lpf
    keep = ends - starts >= min_tokens
    starts, ends = starts[keep], ends[keep]
    depth = np.zeros(n + 1, dtype=np.int32)  # n < 2**31: the suffix array's own limit here
    np.add.at(depth, starts, 1)
    np.add.at(depth, ends, -1)
    return np.cumsum(depth[:-1], dtype=np.int32) > 0


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in mask."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _documents(shard: Path, drops: set[int]) -> Iterator[tuple[int, str]]:
    source = pq.ParquetFile(shard)
    row = 0
    for group in range(source.num_row_groups):
        for text in source.read_row_group(group, columns=["text"]).column("text").to_pylist():
            if row not in drops:
                yield row, text
            row += 1


def find_spans(shards: list[Path], drops: list[set[int]], min_tokens: int, dests: list[Path]) -> dict[str, int]:
    """Cut spans of one group of scratch shards, written per shard to `dests` (SPAN_DTYPE)."""
    vocab: dict[str, int] = {}
    ids = array("i")
    where: list[tuple[int, int]] = []  # (shard in group, row) of each document
    doc_ends = array("q")
    nbytes = 0
    separator = -1  # replaced below by an id no word has
    for s, (path, dropped) in enumerate(zip(shards, drops, strict=True)):
        for row, text in _documents(path, dropped):
            nbytes += len(text.encode())
            ids.extend([vocab.setdefault(w, len(vocab)) for w in text.split()])
            doc_ends.append(len(ids))
            ids.append(separator)
            where.append((s, row))
    if len(ids) >= 2**31 - 1:
        raise ValueError(
            f"{len(ids):,} words in one substring-dedup group ({', '.join(str(p) for p in shards)}): over the "
            f"suffix array's 2**31 limit; split the input files into smaller ones"
        )
    tokens = np.frombuffer(ids, dtype=np.int32).copy()
    tokens[tokens == separator] = len(vocab)
    del ids, vocab  # the suffix array's working memory is the peak: free what it does not need
    ends = np.frombuffer(doc_ends, dtype=np.int64)
    mask = repeated_token_mask(tokens, ends, min_tokens)
    run_starts, run_ends = _runs(mask)
    doc = np.searchsorted(ends, run_starts)
    doc_starts = np.concatenate(([0], ends[:-1] + 1))
    per_shard: list[list[tuple[int, int, int]]] = [[] for _ in shards]
    for d, a, b in zip(doc.tolist(), run_starts.tolist(), run_ends.tolist(), strict=True):
        s, row = where[d]
        first = int(doc_starts[d])
        per_shard[s].append((row, a - first, b - first))
    for dest, spans in zip(dests, per_shard, strict=True):
        records = np.array(spans, dtype=SPAN_DTYPE) if spans else np.empty(0, dtype=SPAN_DTYPE)
        with atomic_path(dest) as tmp, open(tmp, "wb") as f:
            np.save(f, records, allow_pickle=False)
    return {
        "documents": len(where),
        "tokens": int(len(tokens) - len(where)),
        "text_bytes": nbytes,
        "spans": len(run_starts),
        "tokens_cut": int(mask.sum()),
    }


def load_spans(path: Path) -> dict[int, list[tuple[int, int]]]:
    """row -> its cuts (token start, token end), in order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for row, start, end in np.load(path, allow_pickle=False).tolist():
        out.setdefault(row, []).append((start, end))
    return out


def cut(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` without the tokens of each span (and the whitespace after each cut token)."""
    bounds = [m.span() for m in _TOKEN.finditer(text)]
    parts: list[str] = []
    pos = 0
    for start, end in spans:
        parts.append(text[pos : bounds[start][0]])
        pos = bounds[end][0] if end < len(bounds) else len(text)
    parts.append(text[pos:])
    return "".join(parts).strip()

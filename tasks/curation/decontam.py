"""Benchmark decontamination: training documents that share a word n-gram with an
evaluation item are removed (or flagged), the 13-gram overlap test of GPT-3 and
lm-evaluation-harness.

What is indexed, per benchmark file, is every text an evaluation scores: an item's
question or context followed by one answer choice, once per choice. Indexing the context
with each choice (rather than all choices run together in one string) means a document
that quotes a question together with its answer, the usual leak, shares the n-grams that
span the question/answer boundary whichever choice is the answer; n-grams inside the
question or inside a choice are covered as well.

Words are `normalized_words` (lower-cased \\w+ runs) of the repaired key form
(repair.key_text) on both sides, so case, punctuation, spacing, mojibake, HTML entities and
full-width forms do not hide a copy. Each word is hashed once with blake2b (cached), and an
n-gram's hash is a position-weighted sum of its word hashes, its length mixed in, then a
splitmix64 finaliser: stable across processes and machines, and computed for all of a
document's n-grams at once in numpy. A text shorter than n words is one n-gram of all its
words; since the length is part of the hash, it can only equal a document that is exactly
that word sequence, never a window of a longer one. Against the ~2.2 million hashes of the
four standard benchmarks, a random 64-bit collision hits about one document n-gram in 10^13.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tasks.curation.repair import key_text
from tasks.curation.shingles import normalized_words
from tasks.evaluation.data import iter_jsonl


class DecontamConfig(BaseModel):
    """Which benchmarks training documents are checked against, and what happens to a hit."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Check training documents for benchmark n-grams.")
    ngram: int = Field(13, ge=1, description="Words per n-gram (13 as in GPT-3 and lm-evaluation-harness).")
    action: Literal["remove", "flag"] = Field(
        "remove", description="flag keeps the document, records the benchmark in its metadata and counts it."
    )
    benchmark_paths: list[str] = Field(
        default_factory=list,
        description="Benchmark JSONL files (Hugging Face schemas); empty = the files evaluation uses.",
    )


# --- benchmark files --------------------------------------------------------------------

SCHEMAS = {  # name: the keys an item needs, for the error message
    "ARC": "question, choices {text, label}, answerKey",
    "HellaSwag": "ctx, endings",
    "MMLU": "question, choices [list], answer",
    "TruthfulQA": "question, mc1_targets {choices, labels}, mc2_targets",
    "TruthfulQA generation": "question, correct_answers, incorrect_answers",
    "generation file": "prompt, references",
}


def _item_parts(rec: Any) -> tuple[str, list[str]] | None:
    """(context, answer choices) of a record in any known schema, or None."""
    if not isinstance(rec, dict):
        return None
    if "ctx" in rec and isinstance(rec.get("endings"), list):
        return rec["ctx"], rec["endings"]
    if "question" in rec and isinstance(rec.get("mc1_targets"), dict):
        # mc2 lists the mc1 choices and more; both are scored, so both are indexed.
        choices = list(rec["mc1_targets"].get("choices", []))
        if isinstance(rec.get("mc2_targets"), dict):
            choices += rec["mc2_targets"].get("choices", [])
        return rec["question"], choices
    if "question" in rec and isinstance(rec.get("correct_answers"), list):
        return rec["question"], list(rec["correct_answers"]) + list(rec.get("incorrect_answers") or [])
    if isinstance(rec.get("prompt"), str) and "references" in rec:
        refs = rec["references"]
        return rec["prompt"], ([refs] if isinstance(refs, str) else list(refs)) + list(
            rec.get("incorrect_references") or []
        )
    options = rec.get("choices")
    if "question" in rec and "answerKey" in rec and isinstance(options, dict) and "text" in options:
        return rec["question"], options["text"]
    if "question" in rec and "answer" in rec and isinstance(options, list):
        return rec["question"], options
    return None


def benchmark_test_texts(path: Path) -> Iterator[str]:
    """Each scored text of a benchmark JSONL file: an item's question or context, a space,
    and one answer choice; one text per distinct choice of each item, in file order."""
    path = Path(path)
    for line_no, rec in iter_jsonl(path):  # the evaluation stage's reader: same errors, same files
        parts = _item_parts(rec)
        if parts is None:
            expected = "; ".join(f"{name} ({needs})" for name, needs in SCHEMAS.items())
            raise ValueError(
                f"{path}, line {line_no}: record matches no benchmark schema "
                f"(it has {sorted(rec)}); expected the keys of one of: {expected}"
            )
        context, choices = parts
        for choice in dict.fromkeys(str(c) for c in choices):
            yield f"{context} {choice}"


_SPLIT_STEM = re.compile(r"(train|test|validation|valid|val|dev)([-_.].*)?")


def benchmark_name(path: Path) -> str:
    """The file stem, with its folder in front when the stem only names a split
    (hellaswag/validation.jsonl -> "hellaswag/validation", mmlu_test.jsonl -> "mmlu_test")."""
    path = Path(path)
    stem = path.name.split(".")[0]
    return f"{path.parent.name}/{stem}" if _SPLIT_STEM.fullmatch(stem) and path.parent.name else stem


# --- hashing ----------------------------------------------------------------------------

_WORD_CACHE_LIMIT = 500_000  # entries (~60 MB); cleared when full so a worker's memory stays bounded
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _blake64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class _NgramHasher:
    """Stable 64-bit hashes of word sequences' n-grams; the same in every process."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"n-gram size must be at least 1, got {n}")
        self.n = n
        # Distinct odd weights per position, so reordered words hash differently.
        self._weights = np.array([_blake64(f"decontam-position-{j}".encode()) | 1 for j in range(n)], dtype=np.uint64)
        self._words: dict[str, int] = {}

    def _word_hashes(self, words: list[str]) -> np.ndarray:
        cache = self._words
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        try:  # map() over the cache runs in C; most words of a document are already there
            return np.fromiter(map(cache.__getitem__, words), np.uint64, len(words))
        except KeyError:
            for w in set(words).difference(cache):
                cache[w] = _blake64(w.encode("utf-8"))
            return np.fromiter(map(cache.__getitem__, words), np.uint64, len(words))

    def ngram_hashes(self, texts: list[list[str]]) -> np.ndarray:
        """Hashes of every n-word window of each word list, concatenated in order (duplicates
        kept); a list shorter than n gives one hash of all its words, an empty one none."""
        n = self.n
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        wh = self._word_hashes([w for words in texts for w in words])
        starts = np.cumsum(lengths) - lengths
        windows = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
        text = np.repeat(np.arange(len(texts)), windows)  # the text each window belongs to
        first = starts[text] + np.arange(len(text)) - (np.cumsum(windows) - windows)[text]  # its first word
        k = np.minimum(lengths, n)[text]  # words in each window: n, or fewer for a short text
        acc = k.astype(np.uint64) * _GOLDEN  # the length, mixed in; uint64 array ops wrap mod 2^64
        shortest = int(k.min()) if len(k) else 0
        for j in range(n):  # n vector ops, not one per window
            if j < shortest:
                acc += wh[first + j] * self._weights[j]
            else:
                has = k > j
                acc[has] += wh[first[has] + j] * self._weights[j]
        # splitmix64's finaliser: a sum of weighted hashes keeps linear structure; this removes it.
        acc ^= acc >> np.uint64(30)
        acc *= _MIX1
        acc ^= acc >> np.uint64(27)
        acc *= _MIX2
        acc ^= acc >> np.uint64(31)
        return acc


_BATCH = 4096  # texts hashed per numpy pass while indexing: amortises call overhead, bounds memory


def benchmark_ngram_hashes(paths: list[Path], n: int) -> dict[str, np.ndarray]:
    """Per benchmark (see `benchmark_name`), the sorted unique uint64 hashes of the n-grams
    of its scored texts. A text shorter than n words gives one n-gram of all its words, so
    short items (many ARC and MMLU questions with a short answer) still catch a document that
    is exactly such an item. Files with the same name are merged."""
    hasher = _NgramHasher(n)
    parts: dict[str, list[np.ndarray]] = {}
    for path in paths:
        found = parts.setdefault(benchmark_name(Path(path)), [])
        texts = (normalized_words(key_text(t)) for t in benchmark_test_texts(Path(path)))
        while batch := list(islice(texts, _BATCH)):
            found.append(np.unique(hasher.ngram_hashes(batch)))
    return {
        name: np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.uint64) for name, arrays in parts.items()
    }


# --- the index on disk --------------------------------------------------------------------

_META = "__decontam_meta__"  # [format version, n]: an index built for another n never matches
_FORMAT = 1


def save_index(hashes: dict[str, np.ndarray], path: Path, n: int | None = None) -> None:
    """Write the index as .npz atomically (temp file, then rename). Given `n`, it is stored
    so `load_index` can refuse an index built for a different n-gram size."""
    path = Path(path)
    if _META in hashes:
        raise ValueError(f"{_META!r} is reserved and cannot name a benchmark")
    arrays = {name: np.asarray(h, dtype=np.uint64) for name, h in hashes.items()}
    arrays[_META] = np.array([_FORMAT, -1 if n is None else n], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, allow_pickle=False, **arrays)  # integer arrays: nothing to pickle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_index(path: Path, n: int | None = None) -> dict[str, np.ndarray]:
    """Read an index written by `save_index`; given `n`, check it was built for that n."""
    with np.load(Path(path), allow_pickle=False) as z:
        index = {name: z[name] for name in z.files}
    meta = index.pop(_META, None)
    if meta is not None:
        version, built_n = int(meta[0]), int(meta[1])
        if version != _FORMAT:
            raise ValueError(
                f"{path}: decontamination index format {version}, this code reads "
                f"{_FORMAT}; delete the file so it is rebuilt"
            )
        if n is not None and built_n not in (-1, n):
            raise ValueError(
                f"{path}: decontamination index holds {built_n}-grams but {n}-grams "
                "were asked for; delete the file so it is rebuilt with the new size"
            )
    return index


# --- matching -----------------------------------------------------------------------------


class Decontaminator:
    """Tests documents against a benchmark index; built once per worker."""

    def __init__(self, index: dict[str, np.ndarray], n: int):
        self._hasher = _NgramHasher(n)
        self.names = list(index)
        arrays = [np.asarray(index[name], dtype=np.uint64) for name in self.names]
        flat = np.concatenate(arrays) if arrays else np.empty(0, np.uint64)
        owners = np.repeat(np.arange(len(arrays), dtype=np.int32), [len(a) for a in arrays])
        # One sorted array for membership; `return_index` gives each hash's first occurrence,
        # so its owner is the earliest benchmark holding it.
        self._hashes, first = np.unique(flat, return_index=True)
        self._owner = owners[first]
        # A one-bit-per-slot filter on the hashes' top bits, ~16 slots per indexed hash (8 MB
        # for the four standard benchmarks): almost every document n-gram is rejected by one
        # memory read, and only the few percent that pass pay for a binary search (5x faster).
        bits = max(16, int(np.ceil(np.log2(16 * max(len(self._hashes), 1)))))
        self._shift = np.uint64(64 - bits)
        self._filter = np.zeros(1 << (bits - 3), dtype=np.uint8)
        slot = self._hashes >> self._shift
        np.bitwise_or.at(
            self._filter, (slot >> np.uint64(3)).astype(np.intp), np.left_shift(1, slot & np.uint64(7)).astype(np.uint8)
        )

    def match(self, text: str, keyed: bool = False) -> str | None:
        """Name of the first benchmark (in index order) sharing an n-gram with the text, or None.
        `text` is compared in its key form (repair.key_text), as the benchmarks were indexed;
        `keyed`: it is in that form already (key_text is not applied twice: "＆amp;" folds to
        "&amp;", which a second pass would decode)."""
        if len(self._hashes) == 0:
            return None
        doc = self._hasher.ngram_hashes([normalized_words(text if keyed else key_text(text))])
        slot = doc >> self._shift
        maybe = doc[(self._filter[(slot >> np.uint64(3)).astype(np.intp)] >> (slot & np.uint64(7))) & 1 == 1]
        if len(maybe) == 0:
            return None
        pos = np.minimum(np.searchsorted(self._hashes, maybe), len(self._hashes) - 1)
        hit = self._hashes[pos] == maybe
        if not hit.any():
            return None
        return self.names[int(self._owner[pos[hit]].min())]

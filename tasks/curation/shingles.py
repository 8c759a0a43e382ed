"""Word n-gram shingles: the unit of near-duplicate similarity (MinHash, noise injector, benchmarks).

Words are lower-cased runs of letters and digits, so punctuation, case and spacing edits do
not change a document's shingles; near-exact copies therefore have identical signatures.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")


def normalized_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(text: str, n: int = 5) -> set[str]:
    """The set of word n-grams; a document shorter than n words is one shingle of all its words."""
    words = normalized_words(text)
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)

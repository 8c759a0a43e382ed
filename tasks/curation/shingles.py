"""Word n-gram shingles: the unit of near-duplicate similarity (MinHash, noise injector, benchmarks).

Words are lower-cased runs of letters and digits, so punctuation, case and spacing edits do
not change a document's shingles; near-exact copies therefore have identical signatures.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")
# On ASCII text \w is [A-Za-z0-9_]: every other character becomes a space and str.split()
# cuts the words, several times faster than the regex and giving the same list.
_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")})


def normalized_words(text: str) -> list[str]:
    text = text.lower()
    if text.isascii():
        return text.translate(_ASCII_NON_WORD).split()
    return _WORD.findall(text)


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

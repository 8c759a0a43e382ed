"""How the heuristic rules split a document: words, lines, paragraphs, sentences.

Words are whitespace-separated tokens with surrounding punctuation stripped; tokens that
are nothing but punctuation are dropped. Gopher (Rae et al., 2021) and datatrove use a
language tokenizer (NLTK or spaCy) instead. This simpler rule needs no downloads, runs at
str.split speed, and differs from them mainly on contractions ("don't" stays one word)
and on punctuation tokens, which a tokenizer keeps as words and this rule does not.

Lines are stripped and blank lines dropped, so layout (indentation, trailing spaces, blank
lines between paragraphs, \\r\\n) does not change a verdict. Paragraphs are separated by
one or more blank lines.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from functools import cached_property
from itertools import repeat

# ASCII punctuation plus the typographic marks web text is full of.
PUNCTUATION = string.punctuation + "“”‘’«»‹›„‚…–—―·•¡¿"

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A sentence ends at a run of . ! ? (optionally followed by closing quotes or brackets)
# where the line ends or the next word does not start in lower case: "e.g. the" is one
# sentence. Possessive quantifiers and the look-behind keep a long run of dots linear.
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]++[\"'”’)\]]*+(?:\s++(?![a-z])|\s*+$)")


def words(text: str) -> list[str]:
    """Whitespace tokens with surrounding punctuation stripped; punctuation-only tokens dropped."""
    # map/filter keep the per-token loop in C.
    return list(filter(None, map(str.strip, text.split(), repeat(PUNCTUATION))))


def lines(text: str) -> list[str]:
    """Non-blank lines, stripped."""
    return list(filter(None, map(str.strip, text.splitlines())))


def paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines, stripped; empty blocks dropped."""
    return list(filter(None, map(str.strip, _PARAGRAPH_BREAK.split(text))))


def count_sentences(line: str) -> int:
    """Sentence ends in one line of text (a stand-in for NLTK's punkt, which C4 used)."""
    return len(_SENTENCE_END.findall(line))


def duplicates(items: Iterable[str]) -> tuple[int, int]:
    """Items equal to an earlier item: how many, and their total characters.

    The first occurrence is the original, so two copies of a line count one duplicate.
    """
    counts = Counter(items)
    n = chars = 0
    for item, c in counts.items():
        if c > 1:
            n += c - 1
            chars += len(item) * (c - 1)
    return n, chars


class Segments:
    """One document's splits, each computed on first use and shared by the filters."""

    def __init__(self, text: str):
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return words(self.text)

    @cached_property
    def lines(self) -> list[str]:
        return lines(self.text)

    @cached_property
    def paragraphs(self) -> list[str]:
        return paragraphs(self.text)

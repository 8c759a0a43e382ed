"""Encoding damage for the curation-class benchmark: the second copy of an article as a
careless crawl or CMS leaves it. Each damage keeps the words a reader sees and changes the
characters: HTML entities left encoded, full-width and ligature forms (which NFKC folds),
UTF-8 read as Windows-1252 (mojibake), soft hyphens, zero-width characters.

`rate` is the share of the sites a damage may touch (words, or characters it applies to)
that it does touch; the case builder raises it until the copies' word 5-gram Jaccard is
under MinHash's threshold, so the copy is hidden from near-duplicate detection.
"""

from __future__ import annotations

import html.entities
import random
import re
from collections.abc import Callable

NBSP, SHY = "\u00a0", "\u00ad"
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\ufeff")
_WORD = re.compile(r"\w+")
_LONG_WORD = re.compile(r"[^\W\d_]{6,}")
_SENTENCE_END = re.compile(r"(?<=[.!?]) (?=[A-Z“‘\"'])")


def typographic(text: str) -> str:
    """Straight quotes made curly and a no-break space after each sentence, as published
    web pages have them (".&nbsp; "): the characters that entities and mojibake then touch."""
    text = re.sub(r"(?<=\w)'|'(?=s\b)", "’", text)
    text = re.sub(r"'(?=\w)", "‘", text).replace("'", "’")
    text = re.sub(r'"(?=\w)', "“", text).replace('"', "”")
    text = text.replace(" - ", " – ")
    return _SENTENCE_END.sub(NBSP + " ", text)


def word_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def jaccard(a: str, b: str) -> float:
    x, y = word_shingles(a), word_shingles(b)
    return len(x & y) / max(len(x | y), 1)


_NAMED = {
    "’": ("&rsquo;", "&#8217;"),
    "‘": ("&lsquo;", "&#8216;"),
    "“": ("&ldquo;", "&#8220;"),
    "”": ("&rdquo;", "&#8221;"),
    "–": ("&ndash;", "&#8211;"),
    "—": ("&mdash;", "&#8212;"),
    NBSP: ("&nbsp;", "&#160;"),
    SHY: ("&shy;", "&#173;"),
    "&": ("&amp;",),
    '"': ("&quot;", "&#34;"),
    "'": ("&#39;", "&apos;"),
}


def entities(text: str, rng: random.Random, rate: float) -> str:
    """Characters written as HTML entities, as double-escaped pages show them."""
    out = []
    for ch in text:
        if (ch in _NAMED or ord(ch) > 127) and rng.random() < rate:
            name = html.entities.codepoint2name.get(ord(ch))
            out.append(rng.choice(_NAMED.get(ch) or ((f"&{name};",) if name else ()) + (f"&#{ord(ch)};",)))
        else:
            out.append(ch)
    return "".join(out)


def _cp1252(data: bytes) -> str:
    # Bytes Windows-1252 leaves undefined (0x81, 0x8d, ...) come through as Latin-1, the way
    # browsers and most mojibake in the wild decode them.
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in data)


def mojibake(text: str, rng: random.Random, rate: float) -> str:
    """Paragraphs (each with probability `rate`, at least one) encoded as UTF-8 and read as
    Windows-1252: ’ -> â€™, é -> Ã©, a no-break space -> Â plus the space."""
    paras = text.split("\n\n")
    hit = [rng.random() < rate for _ in paras]
    if not any(hit):
        hit[rng.randrange(len(paras))] = True
    return "\n\n".join(_cp1252(p.encode("utf-8")) if h else p for p, h in zip(paras, hit))


def _fullwidth(sentence: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in sentence)


_LIGATURES = (("ffi", "ﬃ"), ("ffl", "ﬄ"), ("ff", "ﬀ"), ("fi", "ﬁ"), ("fl", "ﬂ"))


def compatibility_forms(text: str, rng: random.Random, rate: float) -> str:
    """Sentences in full-width forms (with probability rate / 2) and ligatures for fi, fl,
    ff (each with probability rate): characters NFKC folds back to ASCII."""
    out = []
    for sentence in re.split(r"(?<=[.!?])(?=\s)", text):
        if rng.random() < rate / 2:
            out.append(_fullwidth(sentence))
            continue
        folded = sentence
        for plain, lig in _LIGATURES:
            folded = re.sub(plain, lambda m, lig=lig: lig if rng.random() < rate else m.group(), folded)
        out.append(folded)
    return "".join(out)


def _insert(word: str, mark: Callable[[], str], rng: random.Random, syllables: bool) -> str:
    if syllables:  # after a vowel that a consonant follows, as hyphenation would break
        spots = [i for i in range(2, len(word) - 2) if word[i - 1] in "aeiouy" and word[i] not in "aeiouy"]
    else:
        spots = list(range(1, len(word)))
    if not spots:
        return word
    for i in sorted(rng.sample(spots, min(len(spots), rng.choice([1, 1, 2]))), reverse=True):
        word = word[:i] + mark() + word[i:]
    return word


def soft_hyphens(text: str, rng: random.Random, rate: float) -> str:
    """U+00AD inside words of six letters or more, as an HTML hyphenator leaves them."""
    return _LONG_WORD.sub(
        lambda m: _insert(m.group(), lambda: SHY, rng, True) if rng.random() < rate else m.group(), text
    )


def zero_width(text: str, rng: random.Random, rate: float) -> str:
    """Zero-width spaces, joiners, non-joiners and BOMs inside words, and a BOM in front."""
    marked = _WORD.sub(
        lambda m: (
            _insert(m.group(), lambda: rng.choice(ZERO_WIDTH), rng, False)
            if len(m.group()) > 1 and rng.random() < rate
            else m.group()
        ),
        text,
    )
    return "\ufeff" + marked


def mixed(text: str, rng: random.Random, rate: float) -> str:
    """An invisible damage and an encoding damage together, the invisible one first (so a
    soft hyphen becomes &shy; or Â­)."""
    text = rng.choice([soft_hyphens, zero_width])(text, rng, rate)
    return rng.choice([entities, mojibake])(text, rng, rate)


DAMAGES: dict[str, Callable[[str, random.Random, float], str]] = {
    "entities": entities,
    "compatibility_forms": compatibility_forms,
    "mojibake": mojibake,
    "soft_hyphens": soft_hyphens,
    "zero_width": zero_width,
    "mixed": mixed,
}
RATES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
HIDDEN_BELOW = 0.75  # MinHash's verification threshold is 0.8; a margin below it


def damage(text: str, kind: str, rng: random.Random) -> tuple[str, float, float]:
    """(damaged copy, rate used, word 5-gram Jaccard with `text`): the lowest rate that hides
    it, or the copy at rate 1 if none does (a passage with few quotes and dashes for entities
    or mojibake to touch)."""
    for rate in RATES:
        copy = DAMAGES[kind](text, rng, rate)
        j = jaccard(text, copy)
        if j < HIDDEN_BELOW:
            break
    return copy, rate, j

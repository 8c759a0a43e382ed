"""Gopher quality and repetition rules (Rae et al., 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", appendix A.1.1 and table A1).

Quality: 50..100,000 words; mean word length 3..10; '#' and ellipsis ('...' or '…') each
at most 0.1 per word; at most 90% of lines starting with a bullet and 30% ending in an
ellipsis; at least 80% of words with a letter; at least 2 of the stop words
the/be/to/of/and/that/have/with. The stop words and word-length bounds are English: each
language has its own, or has those rules skipped (languages.py), and so do the rules that
count words for a language written without spaces (the `skip` argument).

Repetition: duplicate lines and paragraphs as a fraction of all (0.3) and of characters
(0.2); characters covered by the most frequent 2/3/4-gram (0.20/0.18/0.16); characters
covered by duplicated 5..10-grams (0.15 down to 0.10).

Choices where the paper is silent, and where this differs from datatrove's
GopherQualityFilter and GopherRepetitionFilter:
- A duplicate is an occurrence of something that appeared earlier: a line written twice
  counts one duplicate line, as in datatrove.
- Character fractions are taken over the characters of the units compared (stripped
  lines, paragraphs, words) rather than of the raw text, so layout does not move them.
- N-gram characters are counted through a mask over word positions, so overlapping
  occurrences are not counted twice (the paper asks for this for duplicated n-grams; the
  top n-gram gets the same treatment so both fractions stay within [0, 1]).
- The most frequent n-gram counts only if it occurs at least twice: a unique n-gram is no
  repetition, and without this every document under 10 words would fail top_2_gram.
- Stop words match case-insensitively ("The" counts); datatrove's match is case-sensitive.
"""

from __future__ import annotations

import re
from itertools import filterfalse, repeat
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.curation.rules.languages import LanguageRules
from tasks.curation.rules.text import Segments, duplicates

Fraction = Annotated[float, Field(ge=0, le=1)]
NgramSize = Annotated[int, Field(ge=1, le=50)]

# The paper does not list its bullet characters; these are the ones web text uses.
# "-" and "*" are included because datatrove counts "-" and Markdown uses "*".
BULLETS = ("•", "‣", "◦", "▪", "▫", "●", "○", "■", "□", "–", "-", "*")
ELLIPSES = ("...", "…")
_LETTER = re.compile(r"[^\W\d_]")


class GopherQualityConfig(BaseModel):
    """Thresholds of Gopher's quality filter; defaults are the published ones. The stop words
    and mean word-length bounds are set per language (heuristics.languages)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Apply Gopher's quality filter.")
    min_words: int = Field(50, ge=0, description="Fewest words a document may have.")
    max_words: int = Field(100_000, ge=1, description="Most words a document may have.")
    max_symbol_word_ratio: float = Field(
        0.1, ge=0, description="'#' per word, and '...' or '…' per word, must each stay at or below this."
    )
    max_bullet_lines_fraction: Fraction = Field(0.9, description="Most lines that may start with a bullet.")
    max_ellipsis_lines_fraction: Fraction = Field(0.3, description="Most lines that may end in an ellipsis.")
    min_alpha_words_fraction: Fraction = Field(0.8, description="Words containing a letter.")
    min_stop_words: int = Field(
        2, ge=0, description="Occurrences of the document language's stop words needed (repeats count); 0: off."
    )
    bullets: tuple[str, ...] = Field(BULLETS, description="A line starting with one of these is a bullet line.")

    @model_validator(mode="after")
    def _ranges(self) -> GopherQualityConfig:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        return self


class GopherRepetitionConfig(BaseModel):
    """Thresholds of Gopher's repetition filter (table A1); each maximum is inclusive."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Apply Gopher's repetition filter.")
    max_dup_line_fraction: Fraction = Field(0.3, description="Most lines that may repeat an earlier line.")
    max_dup_para_fraction: Fraction = Field(0.3, description="Most paragraphs that may repeat an earlier paragraph.")
    max_dup_line_char_fraction: Fraction = Field(0.2, description="Most characters that may lie in repeated lines.")
    max_dup_para_char_fraction: Fraction = Field(
        0.2, description="Most characters that may lie in repeated paragraphs."
    )
    top_ngram_max_char_fraction: dict[NgramSize, Fraction] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description="n -> most characters the most frequent n-gram may cover.",
    )
    dup_ngram_max_char_fraction: dict[NgramSize, Fraction] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> most characters repeated n-grams may cover.",
    )


def quality_reasons() -> list[str]:
    return [
        f"gopher_quality.{r}"
        for r in (
            "word_count",
            "mean_word_length",
            "symbol_word_ratio",
            "bullet_lines",
            "ellipsis_lines",
            "alpha_words",
            "stop_words",
        )
    ]


def repetition_reasons(cfg: GopherRepetitionConfig) -> list[str]:
    fixed = ["dup_line_fraction", "dup_para_fraction", "dup_line_char_fraction", "dup_para_char_fraction"]
    # N-gram rules are checked by increasing n, the top rule before the dup rule of one n.
    ngram = sorted(
        [(n, 0, "top") for n in cfg.top_ngram_max_char_fraction]
        + [(n, 1, "dup") for n in cfg.dup_ngram_max_char_fraction]
    )
    return [f"gopher_repetition.{r}" for r in fixed + [f"{kind}_{n}_gram" for n, _, kind in ngram]]


def letter_words(words: list[str]) -> int:
    """How many of the words contain a letter."""
    # isalpha() settles the common all-letter word; only the rest need the regex (all in C).
    others = list(filterfalse(str.isalpha, words))
    return len(words) - len(others) + sum(map(bool, map(_LETTER.search, others)))


def check_quality(
    seg: Segments, cfg: GopherQualityConfig, lang: LanguageRules, skip: frozenset[str] = frozenset()
) -> tuple[str, str] | None:
    """(reason, detail) of the first quality rule the document fails, or None. `lang` gives the
    stop words and word-length bounds; rules named in `skip` are not checked."""
    words = seg.words
    n = len(words)
    if "gopher_quality.word_count" not in skip and not cfg.min_words <= n <= cfg.max_words:
        return "gopher_quality.word_count", f"{n} words outside {cfg.min_words}..{cfg.max_words}"
    if n and "gopher_quality.mean_word_length" not in skip:
        mean = sum(map(len, words)) / n
        lo = lang.min_mean_word_length if lang.min_mean_word_length is not None else 0.0
        hi = lang.max_mean_word_length if lang.max_mean_word_length is not None else float("inf")
        if not lo <= mean <= hi:
            return "gopher_quality.mean_word_length", f"mean word length {mean:.2f} outside {lo:g}..{hi:g}"
    if n and "gopher_quality.symbol_word_ratio" not in skip:
        text = seg.text
        for name, count in (("'#'", text.count("#")), ("ellipsis", text.count("...") + text.count("…"))):
            if count / n > cfg.max_symbol_word_ratio:
                return (
                    "gopher_quality.symbol_word_ratio",
                    f"{name} per word {count / n:.3f} > {cfg.max_symbol_word_ratio:g}",
                )
    lines = seg.lines
    if lines:
        bullets = sum(map(str.startswith, lines, repeat(cfg.bullets))) / len(lines)
        if bullets > cfg.max_bullet_lines_fraction:
            return ("gopher_quality.bullet_lines", f"bullet lines {bullets:.2f} > {cfg.max_bullet_lines_fraction:g}")
        ellipsis = sum(map(str.endswith, lines, repeat(ELLIPSES))) / len(lines)
        if ellipsis > cfg.max_ellipsis_lines_fraction:
            return (
                "gopher_quality.ellipsis_lines",
                f"lines ending in an ellipsis {ellipsis:.2f} > {cfg.max_ellipsis_lines_fraction:g}",
            )
    if n and "gopher_quality.alpha_words" not in skip:
        alpha = letter_words(words) / n
        if alpha < cfg.min_alpha_words_fraction:
            return ("gopher_quality.alpha_words", f"words with a letter {alpha:.2f} < {cfg.min_alpha_words_fraction:g}")
    if cfg.min_stop_words and "gopher_quality.stop_words" not in skip:
        stop, hits = frozenset(lang.stop_words), 0
        for w in words:
            if w.lower() in stop:
                hits += 1
                if hits >= cfg.min_stop_words:
                    break
        else:
            return "gopher_quality.stop_words", f"{hits} stop words < {cfg.min_stop_words}"
    return None


def _covered_chars(starts: np.ndarray, n: int, lengths: np.ndarray) -> int:
    """Characters of the words covered by n-grams starting at `starts` (unique, sorted)."""
    depth = np.zeros(len(lengths) + 1, dtype=np.int64)
    depth[starts] += 1  # indices are unique within each of these two assignments
    depth[starts + n] -= 1
    return int(lengths[np.cumsum(depth[:-1]) > 0].sum())


def _word_ids(words: list[str]) -> np.ndarray:
    """Dense ids of the words, numbered in order of first appearance."""
    index = dict(zip(dict.fromkeys(words), range(len(words))))
    return np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique's (index of first, inverse, counts) of `keys`, with less per-call overhead
    (this runs for each n of each document)."""
    order = np.argsort(keys, kind="stable")  # stable: each run of equal keys starts at its first position
    ordered = keys[order]
    starts = np.empty(len(keys), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    bounds = np.flatnonzero(starts)
    counts = np.empty(len(bounds), dtype=np.int64)
    np.subtract(bounds[1:], bounds[:-1], out=counts[:-1])
    counts[-1:] = len(keys) - bounds[-1:]
    return order[bounds], inverse, counts


def _top_failure(
    n: int, limit: float, pos: np.ndarray, grouped: tuple[np.ndarray, np.ndarray, np.ndarray], lengths: np.ndarray
) -> tuple[str, str] | None:
    """top_n_gram's verdict on the n-grams at `pos`, grouped (index of each one's first
    occurrence, the id at each position, each one's count) as _groups gives them."""
    first, gid, freq = grouped
    best = int(freq.argmax())  # on a tie, the n-gram first in word-id order
    if freq[best] < 2:
        return None
    # Its occurrences cover at most count x its own characters; most documents stop here.
    start, total = int(pos[first[best]]), int(lengths.sum())
    if int(freq[best]) * int(lengths[start : start + n].sum()) / total <= limit:
        return None
    frac = _covered_chars(pos[gid == best], n, lengths) / total
    if frac > limit:
        return f"gopher_repetition.top_{n}_gram", f"most frequent {n}-gram covers {frac:.3f} of characters > {limit:g}"
    return None


def _ngram_failure(words: list[str], cfg: GopherRepetitionConfig) -> tuple[str, str] | None:
    top, dup = cfg.top_ngram_max_char_fraction, cfg.dup_ngram_max_char_fraction
    count = len(words)
    ids = _word_ids(words)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=count)
    total = int(lengths.sum())
    # An n-gram can occur twice only where its (n-1)-gram prefix does, so each n looks only at
    # the positions whose (n-1)-gram repeats (`pos`); every other n-gram occurs once. `gid` is a
    # dense id of the (n-1)-gram at each of those positions, the n-gram id is built from it and
    # the next word, then made dense again: one sort over the still-repeating positions per n,
    # no n-gram strings built and no hash collisions. Both factors are below the word count
    # (plus `longest`), so the key fits in int64. Ids keep the order of the word-id tuples, so ties for the most
    # frequent n-gram go to the same one whatever positions were dropped.
    # A repeated (n+1)-gram at i means repeated n-grams at i and i+1, so the characters repeated
    # n-grams cover only shrink as n grows: once past the top rules, a fraction at or below
    # every later dup limit settles the rest.
    longest = min(max([*top, *dup]), count)
    # Past the last word, ids no word has: an n-gram running off the end occurs once, like those
    # the pruning drops, so no position needs trimming for each n.
    padded = np.concatenate([ids, np.arange(count, count + longest, dtype=np.int64)])
    pos, gid = np.arange(count, dtype=np.int64), ids
    freq = np.bincount(ids)  # 1-grams: word ids are already dense and in word order
    first = np.unique(ids, return_index=True)[1] if 1 in top or 1 in dup else np.empty(0, dtype=np.int64)
    for n in range(1, longest + 1):
        if n > 1:
            first, gid, freq = _groups(gid * (count + longest) + padded[pos + n - 1])
        if n in top and (failure := _top_failure(n, top[n], pos, (first, gid, freq), lengths)):
            return failure
        if n in dup:
            repeated = np.ones(len(pos), dtype=bool)
            repeated[first] = False
            frac = _covered_chars(pos[repeated], n, lengths) / total
            if frac > dup[n]:
                return (
                    f"gopher_repetition.dup_{n}_gram",
                    f"repeated {n}-grams cover {frac:.3f} of characters > {dup[n]:g}",
                )
            if n >= max(top, default=0) and frac <= min((v for m, v in dup.items() if m > n), default=1.0):
                break
        again = freq[gid] > 1
        pos, gid = pos[again], gid[again]
        if not len(pos):
            break  # no n-gram repeats, so no longer one does
    return None


def check_repetition(seg: Segments, cfg: GopherRepetitionConfig, ngrams: bool = True) -> tuple[str, str] | None:
    """(reason, detail) of the first repetition rule the document fails, or None; `ngrams`
    False skips the word n-gram rules."""
    lines, paras = seg.lines, seg.paragraphs
    if lines:
        line_dups, line_dup_chars = duplicates(lines)
        para_dups, para_dup_chars = duplicates(paras)
        for reason, value, limit in (
            ("dup_line_fraction", line_dups / len(lines), cfg.max_dup_line_fraction),
            ("dup_para_fraction", para_dups / len(paras), cfg.max_dup_para_fraction),
            ("dup_line_char_fraction", line_dup_chars / sum(map(len, lines)), cfg.max_dup_line_char_fraction),
            ("dup_para_char_fraction", para_dup_chars / sum(map(len, paras)), cfg.max_dup_para_char_fraction),
        ):
            if value > limit:
                return f"gopher_repetition.{reason}", f"{reason.replace('_', ' ')} {value:.3f} > {limit:g}"
    if ngrams and seg.words and (cfg.top_ngram_max_char_fraction or cfg.dup_ngram_max_char_fraction):
        return _ngram_failure(seg.words, cfg)
    return None

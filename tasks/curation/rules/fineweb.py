"""FineWeb's own quality rules (Penedo et al., 2024, "The FineWeb Datasets"), as datatrove's
FineWebQualityFilter implements them.

Drop a document when at most 12% of its lines end in terminal punctuation, when at least
67% of its lines are 30 characters or shorter, when duplicated lines hold 1% or more of
its characters, or when it has more than 0.3 line breaks per word (a list, not prose).

Differences from datatrove, all so that layout alone cannot fail a document:
- Lines are stripped and blank lines ignored (datatrove counts a blank line as a short
  line without punctuation, so blank-line-separated paragraphs push prose towards the
  short-line limit); line breaks are counted as non-blank lines minus one.
- Character fractions are over the characters of the stripped lines.
- Each bound is inclusive on the keep side (keep when fraction >= min or <= max);
  datatrove drops at equality for the first three. This only matters exactly at a
  threshold, and makes max_dup_line_char_fraction=0 mean "no duplicated lines" rather
  than "drop everything".
Words come from text.words, where datatrove uses a language tokenizer that also counts
punctuation tokens, so the per-word ratio reads slightly higher here.

For a language written without spaces between words (Chinese, Japanese, Thai), the rules
on line-final punctuation, short lines and line breaks per word are skipped (the `skip`
argument): its lines end in "。" or in nothing, a 30-character line holds a sentence, and
its whitespace "words" are whole phrases. FineWeb-2 drops the short-line rule for every
language; the English defaults are kept here for the languages written with spaces.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tasks.curation.rules.text import Segments, duplicates

Fraction = Annotated[float, Field(ge=0, le=1)]
REASONS = ("fineweb.line_punct_ratio", "fineweb.short_line_ratio", "fineweb.char_dup_ratio", "fineweb.list_ratio")


class FineWebConfig(BaseModel):
    """Thresholds of FineWeb's quality filter; defaults are datatrove's."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Apply FineWeb's quality filter.")
    min_line_punct_fraction: Fraction = Field(0.12, description="Lines ending in terminal_punctuation.")
    terminal_punctuation: tuple[str, ...] = Field(
        (".", "'", '"', "!", "?"), description="Line endings that count for min_line_punct_fraction."
    )
    max_short_line_fraction: Fraction = Field(
        0.67, description="Most lines that may be short (short_line_max_chars or fewer)."
    )
    short_line_max_chars: int = Field(30, ge=0, description="A line this long or shorter is short.")
    max_dup_line_char_fraction: Fraction = Field(0.01, description="Characters in repeats of earlier lines.")
    max_newline_word_ratio: float = Field(
        0.3, ge=0, description="Most line breaks per word (list-like pages have many)."
    )


def check_fineweb(seg: Segments, cfg: FineWebConfig, skip: frozenset[str] = frozenset()) -> tuple[str, str] | None:
    """(reason, detail) of the first FineWeb rule the document fails, or None; rules named in
    `skip` are not checked."""
    lines = seg.lines
    if not lines:
        return "fineweb.line_punct_ratio", "no non-blank lines"
    n = len(lines)
    punct = sum(1 for line in lines if line.endswith(cfg.terminal_punctuation)) / n
    if punct < cfg.min_line_punct_fraction and "fineweb.line_punct_ratio" not in skip:
        return (
            "fineweb.line_punct_ratio",
            f"lines ending in punctuation {punct:.3f} < {cfg.min_line_punct_fraction:g}",
        )
    short = sum(1 for line in lines if len(line) <= cfg.short_line_max_chars) / n
    if short > cfg.max_short_line_fraction and "fineweb.short_line_ratio" not in skip:
        return (
            "fineweb.short_line_ratio",
            f"lines of <= {cfg.short_line_max_chars} chars {short:.3f} > {cfg.max_short_line_fraction:g}",
        )
    dup = duplicates(lines)[1] / sum(map(len, lines))
    if dup > cfg.max_dup_line_char_fraction:
        return (
            "fineweb.char_dup_ratio",
            f"characters in duplicated lines {dup:.3f} > {cfg.max_dup_line_char_fraction:g}",
        )
    per_word = (n - 1) / max(len(seg.words), 1)
    if per_word > cfg.max_newline_word_ratio and "fineweb.list_ratio" not in skip:
        return "fineweb.list_ratio", f"line breaks per word {per_word:.3f} > {cfg.max_newline_word_ratio:g}"
    return None

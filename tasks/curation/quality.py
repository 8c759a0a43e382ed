"""First heuristic quality rules, after Gopher (Rae et al., 2021) and C4 (Raffel et al., 2020).

Each rule looks at one document and returns the reason it fails, or None to keep it.
"""
from __future__ import annotations

from typing import Callable

from tasks.curation.config import QualityRules

Rule = Callable[[str, list[str], QualityRules], str | None]


def _word_count(text: str, words: list[str], cfg: QualityRules) -> str | None:
    if len(words) < cfg.min_words:
        return "too_few_words"
    if len(words) > cfg.max_words:
        return "too_many_words"
    return None


def _mean_word_length(text: str, words: list[str], cfg: QualityRules) -> str | None:
    mean = sum(len(w) for w in words) / len(words)
    if not cfg.min_mean_word_length <= mean <= cfg.max_mean_word_length:
        return "mean_word_length"
    return None


def _symbol_ratio(text: str, words: list[str], cfg: QualityRules) -> str | None:
    symbols = text.count("#") + text.count("...") + text.count("\u2026")
    return "symbol_ratio" if symbols / len(words) > cfg.max_symbol_word_ratio else None


def _alpha_words(text: str, words: list[str], cfg: QualityRules) -> str | None:
    alpha = sum(1 for w in words if any(c.isalpha() for c in w))
    return "few_alpha_words" if alpha / len(words) < cfg.min_alpha_word_fraction else None


def _repeated_lines(text: str, words: list[str], cfg: QualityRules) -> str | None:
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if len(lines) < 2:
        return None
    repeated = len(lines) - len(set(lines))
    return "repeated_lines" if repeated / len(lines) > cfg.max_duplicate_line_fraction else None


# Order matters only for which reason a document failing several rules is counted under.
RULES: dict[str, Rule] = {
    "word_count": _word_count,
    "mean_word_length": _mean_word_length,
    "symbol_ratio": _symbol_ratio,
    "alpha_words": _alpha_words,
    "repeated_lines": _repeated_lines,
}


def quality_reason(text: str, cfg: QualityRules) -> str | None:
    """The first rule the text fails, or None if it passes them all."""
    words = text.split()
    if not words:
        return "empty"
    for rule in RULES.values():
        reason = rule(text, words, cfg)
        if reason:
            return reason
    return None

"""Heuristic document quality rules: Gopher repetition and quality (Rae et al., 2021), C4
(Raffel et al., 2020) and FineWeb (Penedo et al., 2024), run in that order, as FineWeb's
pipeline runs them. The first failing rule names the reason a document is dropped; the
reason names are stable because removal statistics are counted by them.

The rules read the document's identified language (languages.py): its stop words and
word-length bounds, its cookie phrases. A rule with no setting for that language, or that
counts whitespace words in a language written without spaces, is skipped, never run with
English settings, and counted as `rules_skipped.<rule>.<language>`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.curation.rules import boilerplate, c4, fineweb, gopher
from tasks.curation.rules.boilerplate import BoilerplateConfig
from tasks.curation.rules.c4 import C4Config
from tasks.curation.rules.fineweb import FineWebConfig
from tasks.curation.rules.gopher import GopherQualityConfig, GopherRepetitionConfig
from tasks.curation.rules.languages import (
    DEFAULT_LANGUAGES,
    LANGUAGE_CODE,
    NO_RULES,
    UNSPACED_LANGUAGES,
    LanguageRules,
    language_code,
)
from tasks.curation.rules.text import Segments

__all__ = [
    "BoilerplateConfig",
    "C4Config",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "HeuristicsConfig",
    "LanguageRules",
    "RuleOutcome",
    "apply_heuristics",
    "reason_names",
    "skipped_rules",
]

# Keys of gopher_quality before the stop words and word-length bounds became per language:
# a config that still has them (a run's saved config.yaml) has them moved to the default
# language's entry, the documents they were meant for; languages.<code> given wins over them.
_MOVED_TO_LANGUAGE = ("stop_words", "min_mean_word_length", "max_mean_word_length")


class HeuristicsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gopher_quality: GopherQualityConfig = Field(
        GopherQualityConfig(),
        description="Gopher's quality filter: word counts, symbols, bullets, ellipses, alphabetic words, stop words.",
    )
    gopher_repetition: GopherRepetitionConfig = Field(
        GopherRepetitionConfig(), description="Gopher's repetition filter: repeated lines, paragraphs and n-grams."
    )
    boilerplate: BoilerplateConfig = Field(
        BoilerplateConfig(),
        description="Pages that are mostly furniture (cookie consent, browser checks, error pages, sign-in "
        "walls) are removed (rules/boilerplate.py).",
    )
    c4: C4Config = Field(C4Config(), description="C4's line and document rules.")
    fineweb: FineWebConfig = Field(
        FineWebConfig(), description="FineWeb's quality filter: punctuation, short lines, repeated lines, line breaks."
    )
    languages: dict[str, LanguageRules] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGES),
        description="Language code -> the rules' settings for it (tasks/curation/rules/languages.py has "
        "en, fr, de, es, it, pt and nl). Entries given are merged over these defaults field by field; "
        "null leaves a language with no settings. A document in a language without an entry, or "
        "without a setting, skips those rules (counted as rules_skipped.<rule>.<language>).",
    )
    default_language: str = Field(
        "en", description="The language of documents with no identified language (language ID off)."
    )
    unspaced_languages: tuple[str, ...] = Field(
        UNSPACED_LANGUAGES,
        description="Languages written without spaces between words: the rules that count whitespace "
        "words, or sentences ending in '. ! ?', are skipped for them.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_languages(cls, data: Any) -> Any:
        """The languages given, merged over the defaults; old gopher_quality keys moved."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        merged: dict[str, Any] = {code: rules.model_dump() for code, rules in DEFAULT_LANGUAGES.items()}
        gq = data.get("gopher_quality")
        if isinstance(gq, dict) and (old := {k: gq[k] for k in _MOVED_TO_LANGUAGE if k in gq}):
            data["gopher_quality"] = {k: v for k, v in gq.items() if k not in old}
            merged.setdefault(str(data.get("default_language", "en")), {}).update(old)
        given = data.get("languages", {})
        if not isinstance(given, dict):
            return data  # validation names it
        for code, value in given.items():
            entry = value.model_dump(exclude_unset=True) if isinstance(value, LanguageRules) else value
            if entry is None:
                merged[code] = {}
            elif isinstance(entry, dict):
                merged[code] = {**merged.get(code, {}), **entry}
            else:
                merged[code] = entry  # validation names it
        data["languages"] = merged
        return data

    @field_validator("languages", "unspaced_languages")
    @classmethod
    def _codes(cls, v: Any) -> Any:
        bad = [c for c in v if not LANGUAGE_CODE.fullmatch(c)]
        if bad:
            raise ValueError(
                f"{bad} are not language codes; use ISO 639-1 (or 639-3) codes in lower case, as language "
                f"identification gives them (en, fr, de, zh)"
            )
        return v

    @model_validator(mode="after")
    def _languages_fit(self) -> HeuristicsConfig:
        problems = []
        if self.default_language not in self.languages:
            problems.append(
                f"default_language '{self.default_language}' has no entry in languages; "
                f"use one of: {', '.join(sorted(self.languages))}"
            )
        for code in sorted(set(self.unspaced_languages) & set(self.languages)):
            rules = self.languages[code]
            if rules.stop_words or rules.has_word_length:
                problems.append(
                    f"languages.{code} sets stop words or word-length bounds, but {code} is in "
                    f"unspaced_languages, whose whitespace 'words' are whole phrases: those rules are "
                    f"skipped for it; remove them, or remove {code} from unspaced_languages"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass
class RuleOutcome:
    """A document's verdict. `changes` counts the rules skipped for the document's language
    (`rules_skipped.<rule>.<language>`), kept or dropped, and the edits made to a kept
    document (C4's line removals); a dropped document keeps its input text, so edit counts
    describe kept documents only."""

    text: str
    reason: str | None = None
    detail: str = ""
    changes: Counter[str] = field(default_factory=Counter)


def reason_names(cfg: HeuristicsConfig) -> list[str]:
    """Every reason apply_heuristics can return under `cfg`, in checking order."""
    return [
        *gopher.repetition_reasons(cfg.gopher_repetition),
        boilerplate.REASON,
        *c4.REASONS,
        *gopher.quality_reasons(),
        *fineweb.REASONS,
    ]


def skipped_rules(cfg: HeuristicsConfig, language: str) -> list[str]:
    """The enabled rules that do not apply to documents in `language`, in checking order:
    those it has no setting for, and, if it is written without spaces, those built on
    whitespace words or on '. ! ?' ending sentences."""
    rules = cfg.languages.get(language, NO_RULES)
    unspaced = language in cfg.unspaced_languages
    out: list[str] = []
    if cfg.gopher_repetition.enabled and unspaced:
        out += [r for r in gopher.repetition_reasons(cfg.gopher_repetition) if r.endswith("_gram")]
    c, gq, fw = cfg.c4, cfg.gopher_quality, cfg.fineweb
    if c.enabled and unspaced:
        for on, name in (
            (c.max_word_length, "too_long_word"),
            (c.remove_no_terminal_punct, "no_terminal_punct"),
            (c.min_words_per_line, "too_few_words"),
            (c.min_sentences, "too_few_sentences"),
        ):
            if on:
                out.append(f"c4.{name}")
    if gq.enabled:
        for rule, missing in (
            ("word_count", unspaced),
            ("mean_word_length", unspaced or not rules.has_word_length),
            ("symbol_word_ratio", unspaced),
            ("alpha_words", unspaced),
            ("stop_words", gq.min_stop_words > 0 and (unspaced or not rules.stop_words)),
        ):
            if missing:
                out.append(f"gopher_quality.{rule}")
    if fw.enabled and unspaced:
        out += ["fineweb.line_punct_ratio", "fineweb.short_line_ratio", "fineweb.list_ratio"]
    return out


def apply_heuristics(text: str, cfg: HeuristicsConfig, language: str | None = None) -> RuleOutcome:
    """Run the enabled filters with the settings of `language` (an ISO 639-1 code; None or
    not a code: cfg.default_language); the first failing rule wins.

    Order: Gopher repetition and the page-furniture rule (boilerplate.py) on the page as it
    came, then C4's line removals (and its document rules), then Gopher quality and FineWeb
    on the lines C4 kept. Counting words
    and sentences after the line removals is what removes a page that is only a cookie
    banner, a "please enable JavaScript" notice or an error message: before them, the
    banner's own words pass min_words. (FineWeb runs Gopher quality before C4; so did this
    module, and such pages survived.)
    """
    lang = language_code(language) or cfg.default_language
    rules = cfg.languages.get(lang, NO_RULES)
    skipped = skipped_rules(cfg, lang)
    # Counted up front, so every document of the language counts the same rules, kept or not.
    counts = Counter(f"rules_skipped.{rule}.{lang}" for rule in skipped)
    skip = frozenset(skipped)
    seg = Segments(text)
    ngrams = not any(r.startswith("gopher_repetition.") for r in skipped)
    if cfg.gopher_repetition.enabled and (failure := gopher.check_repetition(seg, cfg.gopher_repetition, ngrams)):
        return RuleOutcome(text, *failure, counts)
    if cfg.boilerplate.enabled and (failure := boilerplate.check_furniture(seg.lines, cfg.boilerplate)):
        return RuleOutcome(text, *failure, counts)
    changes: Counter[str] = Counter()
    if cfg.c4.enabled:
        result = c4.apply_c4(text, cfg.c4, skip, rules.policy_substrings)
        if result.failure:
            return RuleOutcome(text, *result.failure, counts)
        changes = result.changes
        if result.text != text:
            seg = Segments(result.text)
    if cfg.gopher_quality.enabled and (failure := gopher.check_quality(seg, cfg.gopher_quality, rules, skip)):
        return RuleOutcome(text, *failure, counts)
    if cfg.fineweb.enabled and (failure := fineweb.check_fineweb(seg, cfg.fineweb, skip)):
        return RuleOutcome(text, *failure, counts)
    return RuleOutcome(seg.text, None, "", changes + counts)

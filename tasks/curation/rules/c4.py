"""C4 cleaning rules (Raffel et al., 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", section 2.2), as TensorFlow Datasets' c4_utils and
datatrove's C4QualityFilter implement them.

Per line: drop lines with a word over 1000 characters; strip Wikipedia citation marks
([1], [edit], [citation needed]); drop lines that do not end in terminal punctuation
(. ? ! " ') or that end in "..."; drop lines of fewer than 3 words; drop lines mentioning
"javascript" or a cookie/terms-of-use phrase. Per document: drop it if a kept line holds
"lorem ipsum" or a curly bracket, or if the kept lines hold fewer than 5 sentences.

The cookie and terms-of-use phrases are English; they are matched in every document (an
English cookie banner on a French page is still a banner), together with the document
language's own phrases (languages.py). "javascript" is spelt alike in the languages written
in Latin script. For a language written without spaces between words, the rules that count
words on a line or sentences by ". ! ?" are skipped (the `skip` argument).

As in both implementations (and unlike the paper's wording, which is page-level),
"lorem ipsum" and "{" drop the document only when they sit on a line that survived the
line rules before them: a brace on a code line without terminal punctuation just loses
that line. Sentences are counted with a regex (text.count_sentences) instead of NLTK's
punkt. The bad-words list is not applied here.

Kept lines are stripped, as in C4, but blank lines between them stay (runs collapsed to
one) where C4 joins its kept lines with "\\n": paragraph breaks survive, and a document
that loses no line comes back as it went in, up to whitespace.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.curation.rules.text import count_sentences

_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
REASONS = ("c4.lorem_ipsum", "c4.curly_bracket", "c4.too_few_sentences")


class C4Config(BaseModel):
    """C4's rules; a count of 0 disables its rule, each flag switches one rule."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Apply C4's rules.")
    max_word_length: int = Field(1000, ge=0, description="Drop lines with a longer word (0: off).")
    remove_citations: bool = Field(
        True, description="Strip Wikipedia-style citation markers such as [1] or [citation needed]."
    )
    # Off by default, as in FineWeb's recipe: with it on, every line FineWeb's line_punct_ratio
    # rule sees ends in punctuation, so that rule could never fire.
    remove_no_terminal_punct: bool = Field(
        False, description="Drop lines not ending in terminal_punctuation (C4's original rule)."
    )
    terminal_punctuation: tuple[str, ...] = Field(
        (".", "?", "!", '"', "'"), description="Line endings that count as terminal punctuation."
    )
    min_words_per_line: int = Field(3, ge=0, description="Drop lines with fewer words (0: off).")
    drop_lorem_ipsum: bool = Field(True, description="Remove a document with 'lorem ipsum' on a kept line.")
    remove_javascript_lines: bool = Field(True, description="Drop lines mentioning 'javascript'.")
    drop_curly_bracket: bool = Field(True, description="Remove a document with '{' on a kept line.")
    remove_policy_lines: bool = Field(
        True, description="Drop lines holding a policy phrase (policy_substrings and the language's own)."
    )
    policy_substrings: tuple[str, ...] = Field(
        POLICY_SUBSTRINGS,
        description="Cookie, terms-of-use and privacy phrases (matched in lower case) that mark a policy line.",
    )
    min_sentences: int = Field(5, ge=0, description="Remove a document whose kept lines hold fewer sentences (0: off).")

    @field_validator("policy_substrings")
    @classmethod
    def _lower(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # Lines are matched in lower case; a capitalised phrase would silently never match.
        return tuple(s.lower() for s in v)


@dataclass
class C4Result:
    text: str
    failure: tuple[str, str] | None = None
    changes: Counter[str] = field(default_factory=Counter)


def _line_fault(line: str, cfg: C4Config, skip: frozenset[str]) -> str | None:
    """Why a (citation-stripped) line is removed, or None to keep it."""
    words = line.split()
    if cfg.max_word_length and "c4.too_long_word" not in skip and any(len(w) > cfg.max_word_length for w in words):
        return "too_long_word"
    if (
        cfg.remove_no_terminal_punct
        and "c4.no_terminal_punct" not in skip
        and (not line.endswith(cfg.terminal_punctuation) or line.endswith("..."))
    ):
        return "no_terminal_punct"
    if len(words) < cfg.min_words_per_line and "c4.too_few_words" not in skip:
        return "too_few_words"
    return None


def apply_c4(text: str, cfg: C4Config, skip: frozenset[str] = frozenset(), policy: tuple[str, ...] = ()) -> C4Result:
    """Remove the lines C4 removes; fail the document on C4's document-level rules. Rules
    named in `skip` are not applied; `policy`: more phrases that remove a line."""
    policy = cfg.policy_substrings + policy
    kept: list[str] = []
    removed: Counter[str] = Counter()
    citations = sentences = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            # Keep paragraph breaks (one blank line, never leading or doubled).
            if kept and kept[-1]:
                kept.append("")
            continue
        if cfg.remove_citations and "[" in line:
            line, n = _CITATION.subn("", line)
            citations += n
        low = line.lower()
        fault = _line_fault(line, cfg, skip)
        if fault is None:
            if cfg.drop_lorem_ipsum and "lorem ipsum" in low:
                return C4Result(text, ("c4.lorem_ipsum", "'lorem ipsum' on a kept line"))
            if cfg.remove_javascript_lines and "javascript" in low:
                fault = "javascript"
            elif cfg.drop_curly_bracket and "{" in line:
                return C4Result(text, ("c4.curly_bracket", "'{' on a kept line"))
            elif cfg.remove_policy_lines and any(p in low for p in policy):
                fault = "policy"
        if fault:
            removed[fault] += 1
            continue
        kept.append(line)
        sentences += count_sentences(line)
    if sentences < cfg.min_sentences and "c4.too_few_sentences" not in skip:
        return C4Result(text, ("c4.too_few_sentences", f"{sentences} sentences on kept lines < {cfg.min_sentences}"))
    changes: Counter[str] = Counter({f"c4.lines_removed.{k}": v for k, v in removed.items()})
    if removed:
        changes["c4.lines_removed"] = sum(removed.values())
    if citations:
        changes["c4.citations_removed"] = citations
    if kept and not kept[-1]:
        kept.pop()
    return C4Result("\n".join(kept), changes=changes)

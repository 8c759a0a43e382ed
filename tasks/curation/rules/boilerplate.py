"""Pages that are nothing but furniture: what a site shows instead of its content.

A crawl is full of pages with no content at all: a cookie-consent dialog, a "checking your
browser" or "please enable JavaScript" interstitial, an error page (404, 403, 503 from a
server or a firewall), a sign-in wall or paywall. C4 removes the lines that name
JavaScript or a few policy phrases, and counting words and sentences after that removes
the pages made of those lines alone; but these pages say the same things in other words,
in lines of full sentences, and pass every count. This rule removes a page when short lines
(at most `max_line_words` words) holding a phrase of one of four kinds (consent,
browser_check, error, account) make up `max_line_fraction` (0.3) of its lines, at least
`min_lines` (2) of them.

It judges the page and edits nothing: an article keeps its paragraphs and its "Sign in to
comment" line alike. The bounds are set for precision. In 100 MB of real text (the curation
benchmark's Debian dictionary, Python, kernel and Perl documentation, and WikiText-2; 26,834
documents, with network and login APIs documented at length) the page with the most such
lines has 0.105 of its lines matching, and 75 pages have any; the default removes none. What
it can take for furniture is a short page mostly about the same things (a five-line note on
how to log in, with its error codes); such pages are rare in a crawl and carry little. The
phrases are English, as much of the furniture on other languages' sites is, matched as whole
words in lower case; `phrases.<kind>` replaces a kind's list, or adds a kind. RefinedWeb's
line-wise corrections (Penedo et al. 2023) and C4's policy lines rest on the same idea:
furniture is a small, stable vocabulary.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PHRASES: dict[str, tuple[str, ...]] = {
    # Consent management platforms (IAB's TCF wording: partners, vendors, purposes,
    # legitimate interest) and the buttons under them.
    "consent": (
        "cookie settings",
        "cookie preferences",
        "cookie policy",
        "cookie notice",
        "cookie consent",
        "we use cookies",
        "this site uses cookies",
        "this website uses cookies",
        "accept cookies",
        "accept all",
        "reject all",
        "allow all",
        "manage preferences",
        "manage cookies",
        "manage options",
        "your consent",
        "withdraw your consent",
        "legitimate interest",
        "our partners",
        "our vendors",
        "device information",
        "personalised ads",
        "personalized ads",
        "privacy settings",
        "privacy policy",
        "do not sell my",
        "essential cookies",
        "necessary cookies",
        "analytics cookies",
        "marketing cookies",
    ),
    # Interstitials that stand between a client and the page: JavaScript and browser
    # checks, bot challenges (Cloudflare's "Just a moment..." and its Ray ID).
    "browser_check": (
        "enable javascript",
        "javascript is disabled",
        "javascript is required",
        "javascript is not enabled",
        "requires javascript",
        "turn on javascript",
        "switch on javascript",
        "javascript is switched off",
        "enable cookies",
        "your browser",
        "supported browser",
        "update your browser",
        "not a robot",
        "are human",
        "captcha",
        "verify you are",
        "checking if the site",
        "checking your browser",
        "connection is secure",
        "security check",
        "unusual traffic",
        "automated requests",
        "access denied",
        "ray id",
        "you will be redirected",
        "just a moment",
        "please wait while",
    ),
    # Error pages: HTTP errors, the texts web servers and firewalls send with them (Apache's
    # and nginx's default error documents), and the advice they give.
    "error": (
        "404 not found",
        "error 404",
        "404 error",
        "403 forbidden",
        "error 403",
        "503 service unavailable",
        "500 internal server error",
        "permission to access",
        "access to this page has been denied",
        "request was rejected",
        "has been blocked",
        "contact the site owner",
        "contact the site administrator",
        "webmaster",
        "temporarily unavailable",
        "temporarily unable",
        "maintenance downtime",
        "capacity problems",
        "sorry for the inconvenience",
        "apologize for the inconvenience",
        "apologise for the inconvenience",
        "page not found",
        "error 500",
        "http error",
        "internal server error",
        "service unavailable",
        "bad gateway",
        "something went wrong",
        "page you requested",
        "page you are looking for",
        "page you were looking for",
        "page you're looking for",
        "could not be found",
        "cannot be found",
        "can't be found",
        "no longer available",
        "no longer exists",
        "file not found",
        "this page does not exist",
        "this page doesn't exist",
        "may have been moved",
        "broken link",
        "mistyped",
        "old address",
        "back to the home page",
        "back to the homepage",
        "return to the home page",
        "return to the homepage",
        "go to the home page",
        "try searching",
        "try again later",
    ),
    # Sign-in walls, paywalls and subscription prompts.
    "account": (
        "log in",
        "login required",
        "login to continue",
        "sign in",
        "sign up",
        "logged in",
        "create an account",
        "create a free account",
        "already have an account",
        "don't have an account",
        "forgot your password",
        "forgot password",
        "register now",
        "register for free",
        "members only",
        "subscribers only",
        "subscribe now",
        "subscribe to continue",
        "subscribe to read",
        "to continue reading",
        "continue reading",
        "read the full article",
        "read the rest",
        "unlimited access",
        "unlimited digital access",
        "free trial",
        "cancel anytime",
        "paywall",
        "articles a month",
        "articles per month",
        "free articles",
    ),
}


class BoilerplateConfig(BaseModel):
    """Pages of furniture (consent, browser checks, errors, sign-in walls): removed when short
    lines with its phrases make up `max_line_fraction` of the page; `phrases.<kind>` replaces
    a kind's list."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Remove pages that are mostly furniture.")
    max_line_words: int = Field(
        30, ge=1, description="Only lines of at most this many words count: longer ones are prose."
    )
    max_line_fraction: float = Field(
        0.3,
        gt=0,
        le=1,
        description="A page whose non-blank lines are furniture at this fraction or more is removed.",
    )
    min_lines: int = Field(2, ge=1, description="... and only if it has at least this many furniture lines.")
    phrases: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_PHRASES),
        description="Kind -> phrases marking a furniture line (matched in lower case); a kind given "
        "replaces that kind's default list.",
    )

    @field_validator("phrases")
    @classmethod
    def _merged(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        # Lines are matched in lower case; a kind given replaces the default list of that kind.
        bad = [k for k in v if not k.isidentifier()]
        if bad:
            raise ValueError(f"phrase kinds {bad} must be names (letters, digits, '_'), e.g. consent or paywall")
        merged = {**DEFAULT_PHRASES, **v}
        return {kind: tuple(p.strip().lower() for p in phrases if p.strip()) for kind, phrases in merged.items()}

    @cached_property
    def automaton(self) -> Any | None:
        """An Aho-Corasick automaton of every phrase (one pass over a page finds them all;
        an alternation of 200 phrases in `re` runs at a few MB/s)."""
        import ahocorasick

        automaton = ahocorasick.Automaton()
        for kind, phrases in self.phrases.items():
            for phrase in phrases:
                automaton.add_word(phrase, (kind, len(phrase)))
        if len(automaton) == 0:
            return None
        automaton.make_automaton()
        return automaton


REASON = "boilerplate.furniture_page"
_NEWLINE = re.compile("\n")


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def check_furniture(lines: list[str], cfg: BoilerplateConfig) -> tuple[str, str] | None:
    """(reason, detail) if the page (its non-blank, stripped lines) is mostly furniture."""
    automaton = cfg.automaton
    if automaton is None or not lines:
        return None
    low = "\n".join(lines).lower()  # lower() may change a length; offsets stay inside `low`
    starts: list[int] | None = None
    kinds: dict[int, str] = {}  # line -> the kind of its first phrase
    for end, (kind, n) in automaton.iter(low):
        start = end - n + 1
        if (start and _is_word_char(low[start - 1])) or (end + 1 < len(low) and _is_word_char(low[end + 1])):
            continue  # inside a word: "blogin", "4040"
        if starts is None:  # line starts, built once, only for a page with a phrase at all
            starts = [0, *(m.end() for m in _NEWLINE.finditer(low))]
        line = bisect_right(starts, start) - 1
        kinds.setdefault(line, kind)
    if starts is None or len(kinds) < cfg.min_lines:
        return None
    bounds = [*starts, len(low) + 1]
    counted: Counter[str] = Counter(
        kind for line, kind in kinds.items() if len(low[bounds[line] : bounds[line + 1]].split()) <= cfg.max_line_words
    )
    hits = sum(counted.values())
    if hits < cfg.min_lines or hits / len(lines) < cfg.max_line_fraction:
        return None
    top = ", ".join(f"{k} {n}" for k, n in counted.most_common())
    return REASON, f"{hits} of {len(lines)} lines are page furniture ({top}) >= {cfg.max_line_fraction:g}"

"""Personal data and secrets in a document, found and replaced by typed tokens.

Every pattern runs on Python's backtracking ``re``, so each is written to do bounded work
per starting position: repetitions have upper bounds or are possessive, no quantified
group can split the same text two ways, and lookbehinds admit a start only at the edge of
a run (inside ``1.1.1.1...`` or ``4111 4111 ...`` there is one candidate start, not one
per character). Patterns open with a literal where possible, else a character class, so the
engine skips to candidate characters (to a literal several times faster than to a class).
Checksums, lengths and context are then judged in Python on each candidate. A type whose
trigger (a digit, '@', '::') is absent is not scanned at all, nor is a secret format whose
triggers are (the formats are listed in secret_rules.py). Matched values are never logged
or printed: only types and offsets leave this module.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.curation.secret_rules import SECRET_RULES

PII_TYPES = ("email", "phone", "ipv4", "ipv6", "credit_card", "us_ssn", "iban", "secret")
DEFAULT_TOKENS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "ipv4": "<IP_ADDRESS>",
    "ipv6": "<IP_ADDRESS>",
    "credit_card": "<CREDIT_CARD>",
    "us_ssn": "<SSN>",
    "iban": "<IBAN>",
    "secret": "<SECRET>",
}
# Where two detectors claim overlapping text, the longer claim wins and ties go to the
# type listed first: the more specific, checksummed kinds beat the looser phone shape.
_RANK = {t: i for i, t in enumerate(("secret", "iban", "credit_card", "email", "us_ssn", "ipv6", "ipv4", "phone"))}


class RedactionConfig(BaseModel):
    """Which PII types are replaced, and by which token."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Replace PII in the text kept.")
    types: list[str] = Field(
        default_factory=lambda: list(PII_TYPES),
        description="PII types replaced: email, phone, ipv4, ipv6, credit_card, us_ssn, iban, secret.",
    )
    tokens: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TOKENS),
        description="Replacement per type; a partial mapping is merged over the defaults.",
    )

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - set(PII_TYPES))
        if unknown:
            raise ValueError(f"unknown PII type(s) {unknown}; valid types: {', '.join(PII_TYPES)}")
        return list(dict.fromkeys(types))

    @field_validator("tokens")
    @classmethod
    def _merged_tokens(cls, tokens: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(tokens) - set(PII_TYPES))
        if unknown:
            raise ValueError(f"tokens for unknown PII type(s) {unknown}; valid types: {', '.join(PII_TYPES)}")
        return {**DEFAULT_TOKENS, **tokens}


@dataclass(frozen=True)
class PIIMatch:
    type: str
    start: int
    end: int


Spans = Iterator[tuple[int, int]]

# --- e-mail ---------------------------------------------------------------------------
# The pattern starts at '@', so the scan jumps from one at-sign to the next; the local
# part (at most 64 characters by RFC 5321) is then walked backwards in Python.
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])")
_EMAIL_LOCAL = frozenset(string.ascii_letters + string.digits + "._%+-")
# "logo@2x.png", "icon@1.5x.webp": a pixel-density suffix or a file extension where the top
# level domain would be. None of these extensions is a top level domain.
_ASSET_DOMAIN = re.compile(
    r"@(?:[0-9]+(?:\.[0-9]+)?x\..*|.*\.(?:png|jpe?g|gif|webp|svg|avif|bmp|ico|tiff?|heic|css|js|json|ttf|otf|eot))\Z",
    re.IGNORECASE,
)
# "scheme://user:password@host", "https://key@o1.ingest.sentry.io": before the first '/' after
# "://" is a URL's authority, whose '@' ends a user name or password, not an e-mail's local part.
_URL_AUTHORITY = re.compile(r"://[^\s/?#]{0,256}\Z")


def _emails(text: str) -> Spans:
    for m in _EMAIL_DOMAIN.finditer(text):
        at = start = m.start()
        while start > max(0, at - 64) and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        # The local part must be non-empty and begin where a word begins.
        before = text[start - 1] if start else " "
        if start == at or before in _EMAIL_LOCAL or before.isalnum() or _ASSET_DOMAIN.match(m.group()):
            continue
        if _URL_AUTHORITY.search(text, max(0, start - 260), start):
            continue
        yield start, m.end()


# --- phone ----------------------------------------------------------------------------
# Most patterns below begin with a literal or a character class, not a lookbehind: the
# regex engine can then skip ahead to candidate characters instead of trying every offset.
#
# International: '+', country code, then digit groups each led by exactly one separator,
# so a digit run can be cut into groups one way only. An optional "(0)" or "(415)" may
# open a group. Too many groups or trailing digits fail the lookahead without backtracking;
# the first lookahead (eight digits ahead) keeps "+1 +1 +1 ..." from reaching Python.
_INTL_PHONE = re.compile(
    r"""
    \+(?<![\w+]\+)(?=(?:[ .()-]{0,3}[0-9]){8})[1-9][0-9]{0,14}+
    (?:[ .-]?\([0-9]{1,5}\)[ .-]?[0-9]{1,12}+ | [ .-][0-9]{1,12}+){0,6}+
    (?![\w(]|[ .-][0-9])""",
    re.VERBOSE,
)
# North American national numbers: area code and exchange cannot start with 0 or 1, which
# rules out most dashed order numbers; both separators must agree (no 415-555.0123). Written
# with spaces ("415 555 0123"), the number must not continue a run of spaced digit groups
# (a table row, "12 415 555 0123 9"): checked in Python, see _phones.
_NANP_PHONE = re.compile(
    r"""
    (?<![\w+.-])(?:1[ .-])?
    (?:\([2-9][0-9]{2}\)[ ]?[2-9][0-9]{2}[-. ] | [2-9][0-9]{2}(?P<sep>[-. ])[2-9][0-9]{2}(?P=sep))
    [0-9]{4}(?![\w]|[.-][0-9])""",
    re.VERBOSE,
)
_SPACED_DIGITS_BEFORE = re.compile(r"[0-9][ ]\Z")
_SPACED_DIGITS_AFTER = re.compile(r"[ ][0-9]")
_NANP_SHAPE = re.compile(r"[0-9]{3}[-.) ]{1,2}[0-9]{3}[-. ][0-9]{4}")
_ISO_DATE = re.compile(r"\+[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGIT_RUN = re.compile(r"[0-9]+")


def _plausible_international(number: str) -> bool:
    groups = _DIGIT_RUN.findall(number)
    digits = sum(len(g) for g in groups)
    if not 8 <= digits <= 15 or _ISO_DATE.fullmatch(number):
        return False
    if number[1] == "1" and digits != 11:  # +1 is the North American plan: always 11 digits
        return False
    # "+33 1 23 45 67 89" has one single-digit group; "+1 2 3 4 5 6 7 8" is a list.
    return sum(len(g) == 1 for g in groups[1:]) <= 1


def _phones(text: str) -> Spans:
    if "+" in text:
        yield from (m.span() for m in _INTL_PHONE.finditer(text) if _plausible_international(m.group()))
    # The full pattern opens with a lookbehind, which the engine must try at every offset,
    # so it runs only in a small window around each hit of the cheap shape.
    last_end = 0
    for shape in _NANP_SHAPE.finditer(text):
        # Up to 3 characters ("1 (") may precede the area code; 2 after the end let the
        # closing lookahead see what follows.
        for m in _NANP_PHONE.finditer(text, max(last_end, shape.start() - 3), shape.end() + 2):
            last_end = m.end()
            if m.group("sep") == " " and (
                _SPACED_DIGITS_BEFORE.search(text, max(0, m.start() - 2), m.start())
                or _SPACED_DIGITS_AFTER.match(text, m.end())
            ):
                continue
            yield m.span()


# --- IP addresses ---------------------------------------------------------------------
# The first digit must not continue a word or a dotted run ("v1.2.3.4", "1.2.3.4.5");
# octet values are checked in Python.
_IPV4 = re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w]|\.[0-9])")
# The word before a dotted quad that makes it a version or the number of a part of a
# document ("version 1.2.3.4", "Section 7.6.3.5", "§ 10.2.1.4", "clause 1.2.3.4"). Looked up
# in a set, not searched for with a regex: an address-heavy page has thousands of candidates.
_NUMBERING_WORDS = frozenset(
    {
        # versions
        *("v", "ver", "ver.", "version", "release", "build", "rev", "rev.", "revision", "patch", "firmware", "kernel"),
        # parts of a document ("rule" is not one: "rule 10.0.0.5 allow" is a firewall's)
        *("§", "§§", "¶", "section", "sections", "sec", "sec.", "sect.", "secs.", "clause", "clauses", "article"),
        *("articles", "art.", "arts.", "chapter", "chapters", "ch.", "paragraph", "paragraphs", "para", "para."),
        *("paras.", "item", "items", "figure", "figures", "fig.", "figs.", "table", "tables", "appendix", "annex"),
        *("part", "parts", "step", "steps", "exhibit", "exhibits"),
    }
)


def _numbering_before(text: str, start: int) -> bool:
    """Whether the word before offset ``start`` (up to 3 spaces away) is one of _NUMBERING_WORDS."""
    window = text[max(0, start - 20) : start]
    stripped = window.rstrip()
    if len(window) - len(stripped) > 3 or not stripped:
        return False
    return stripped.rsplit(None, 1)[-1].lstrip("([\"'").lower() in _NUMBERING_WORDS


# A pre-release or build suffix makes a dotted quad a version ("3.7.9.8-rc", "1.2.3.4+git",
# "2.0.1.7-beta2", "4.1.0.3~dev"); a bare "-4" (a range) or trailing "-"/"." leaves it an address.
_VERSION_AFTER = re.compile(
    r"(?i)[-+~](?:rc|alpha|beta|dev|pre|preview|post|snapshot|final|stable|release|git|build|nightly|lts"
    r"|[ab][0-9])(?![a-z])"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Groups end with ':' so the split is unique; the tail is an IPv4 or a last hex group.
_IPV6 = re.compile(
    rf"(?<![\w:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_OCTET}(?:\.{_OCTET}){{3}}|[0-9A-Fa-f]{{1,4}})?"
    r"(?![\w:]|\.[0-9])"
)
_IPV6_FULL_SHAPE = re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")  # without "::"


def _ipv4_ok(address: str) -> bool:
    octets = address.split(".")
    if not all(o == "0" or (o[0] != "0" and int(o) <= 255) for o in octets):
        return False
    # Loopback as written in READMEs and configs (127.0.0.1, 127.0.1.1), 0.0.0.0 and
    # netmasks name no one; private ranges stay: a LAN address can still identify a person.
    return octets[0] not in ("0", "255") and octets[:2] != ["127", "0"]


def _ipv4s(text: str) -> Spans:
    if "." not in text:
        return
    for m in _IPV4.finditer(text):
        if _ipv4_ok(m.group()) and not _numbering_before(text, m.start()) and not _VERSION_AFTER.match(text, m.end()):
            yield m.span()


def _ipv6s(text: str) -> Spans:
    if "::" not in text and not _IPV6_FULL_SHAPE.search(text):
        return
    for m in _IPV6.finditer(text):
        candidate = m.group()
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if _ipv6_plausible(candidate):
            yield m.span()


def _ipv6_plausible(address: str) -> bool:
    # Short compressed forms also parse from code: "::", "::1", slices "x[0::2]", C++
    # "Db::Add". Two groups count only if one is a full four-digit group with a decimal
    # digit in it ("fe80::1", "2001:db8::").
    groups = [g for g in address.split(":") if g]
    return len(groups) >= 3 or "." in address or any(len(g) == 4 and any(c.isdigit() for c in g) for g in groups)


# --- credit cards ---------------------------------------------------------------------
# A maximal run of 13-19 digits with single space/dash separators: a start is admitted only
# where no word character (or digit + separator) precedes, and the possessive count cannot
# give digits back, so a longer run fails at once instead of being tried at every offset.
_CARD = re.compile(r"[0-9](?<!\w[0-9])(?<![0-9][ -][0-9])(?:[ -]?[0-9]){12,18}+(?![\w]|[ -][0-9])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _issuer_ok(digits: str) -> bool:
    # Real issuer ranges start with 3-6, or 2221-2720 (Mastercard); this drops years in a
    # row ("2019 2020 2021 2022") and ISBN-13s (978...) that happen to pass Luhn.
    return digits[0] in "3456" or (digits[0] == "2" and 2221 <= int(digits[:4]) <= 2720)


# An expiry date printed after the number ("12/27", "exp 12/2027", "valid thru 01/29") is
# cardholder data too, and goes with it. A third part ("12/27/2024") makes it a date.
_EXPIRY = re.compile(
    r"(?i)[ ,;]{1,3}(?:(?:exp(?:ires|iry|iration)?(?:[ ]date)?|valid[ ](?:thru|through|until)|good[ ]thru)"
    r"\.?:?[ ]{0,3})?(?:0[1-9]|1[0-2])[ ]?/[ ]?(?:20)?[0-9]{2}(?![\w/]|[.,][0-9])"
)
_SLASH = re.compile(r"[ ]?/")


def _cards(text: str) -> Spans:
    for m in _CARD.finditer(text):
        run, end = m.group(), m.end()
        # The run may have swallowed the month of an expiry or date after it ("... 1111 12/27").
        if run[-3:-2] == " " and _SLASH.match(text, end):
            run, end = run[:-3], end - 3
        groups = re.split("[ -]", run)
        # Printed cards use one kind of separator and open with a group of four.
        if len(groups) > 1 and (len(groups[0]) != 4 or (" " in run and "-" in run)):
            continue
        digits = "".join(groups)
        if _issuer_ok(digits) and _luhn_ok(digits):
            expiry = _EXPIRY.match(text, end)
            yield m.start(), expiry.end() if expiry else end


# --- US social security numbers -------------------------------------------------------
_SSN = re.compile(r"[0-8](?<![\w-][0-8])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![\w-]|\.[0-9])")


# Written with spaces ("078 05 1120", as forms print it) the shape is an ordinary run of
# numbers, so it counts only where the text names it just before: "SSN", "social security".
_SSN_SPACED = re.compile(r"[0-8](?<![\w-][0-8])[0-9]{2} [0-9]{2} [0-9]{4}(?![\w-]|[ .][0-9])")
_SSN_NAMED = re.compile(r"(?:\bssn|\bss#|\bss no|social security(?: number| no\.?| #)?)\W{0,12}\Z")
_SSN_CONTEXT = 40  # characters before the number in which its name must end


def _ssn_issued(area: str, group: str, serial: str) -> bool:
    # Areas 000, 666 and 900-999 (excluded by the patterns), group 00 and serial 0000 are
    # never issued.
    return area not in ("000", "666") and group != "00" and serial != "0000"


def _ssns(text: str) -> Spans:
    if "-" in text:
        for m in _SSN.finditer(text):
            if _ssn_issued(*m.group().split("-")):
                yield m.span()
    for m in _SSN_SPACED.finditer(text):
        # Lower-cased on a short window, whose end is the number's start.
        before = text[max(0, m.start() - _SSN_CONTEXT) : m.start()].lower()
        if _ssn_issued(*m.group().split(" ")) and _SSN_NAMED.search(before):
            yield m.span()


# --- IBAN -----------------------------------------------------------------------------
# Lengths from the SWIFT IBAN registry. Codes outside it are rejected rather than checked
# by mod-97 alone, which one random uppercase token in 97 would pass.
_IBAN_LENGTH = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HN": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}
# Candidates may run on into following capitals ("... 7034 AND"); the country's length
# decides where the IBAN ends.
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]){11,30}+")


def _iban_ok(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> Spans:
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        # On a miss, look again one character on: the greedy candidate may have swallowed
        # the start of the next IBAN ("BE68 5390 0754 7034 DE89 ...").
        pos = m.start() + 1
        candidate = m.group()
        length = _IBAN_LENGTH.get(candidate[:2], 0)
        # Either written solid, or in the printed form's groups of four.
        if candidate[4:5] == " ":
            printed = candidate[: length + (length - 1) // 4]
            gaps = printed[4::5]
            well_formed = gaps.count(" ") == len(gaps) == printed.count(" ")
        else:
            printed = candidate[:length]
            well_formed = " " not in printed
        end = m.start() + len(printed)
        if not well_formed or len(printed.replace(" ", "")) != length or (end < len(text) and text[end].isalnum()):
            continue
        if _iban_ok(printed.replace(" ", "")):
            yield m.start(), end
            pos = end


# --- secrets --------------------------------------------------------------------------
# The formats are listed in secret_rules.py. Each rule is scanned only if one of its
# triggers occurs, and finding which triggers occur must itself be cheap: one `in` per
# trigger is a pass over the text each, about a hundred passes per document. Instead an
# Aho-Corasick automaton of every trigger (pyahocorasick, as the page-furniture rule uses)
# finds all those that occur in one pass over the text, in C.


class _TriggerIndex:
    """Which of a fixed set of substrings occur in a text, in one pass."""

    def __init__(self, triggers: Iterable[str]) -> None:
        self._automaton: Any = ahocorasick.Automaton()
        for t in dict.fromkeys(triggers):
            self._automaton.add_word(t, t)
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def present(self, text: str) -> set[str]:
        """The triggers that occur in ``text``."""
        if self._empty:
            return set()
        return {t for _, t in self._automaton.iter(text)}


_TRIGGERS = _TriggerIndex(t for rule in SECRET_RULES for t in rule.triggers)


def _rules_by_trigger() -> dict[str, list[int]]:
    table: dict[str, list[int]] = {}
    for i, rule in enumerate(SECRET_RULES):
        for t in rule.triggers:
            table.setdefault(t, []).append(i)
    return table


_RULES_BY_TRIGGER = _rules_by_trigger()

_PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# An unterminated block (a truncated page) still loses its header and base64 body lines.
_PEM_BODY = re.compile(r"(?:\s{1,8}[A-Za-z0-9+/=]{16,}+)*+")
_PEM_MAX_CHARS = 32_768  # beyond a large PGP key block; a further END belongs to something else


def _pem_blocks(text: str) -> Spans:
    pos = 0
    end_mark: re.Match[str] | None = None
    ends_exhausted = False
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        # The END search only moves forward, so the scan stays linear even when thousands
        # of headers share one END marker, or have none.
        if not ends_exhausted and (end_mark is None or end_mark.start() < begin.end()):
            end_mark = _PEM_END.search(text, begin.end())
            ends_exhausted = end_mark is None
        if end_mark is not None and end_mark.end() - begin.start() <= _PEM_MAX_CHARS:
            pos = end_mark.end()
        else:
            body = _PEM_BODY.match(text, begin.end())
            assert body is not None  # the pattern also matches an empty body
            pos = body.end()
        yield begin.start(), pos


def _secrets(text: str) -> Spans:
    if "-----BEGIN" in text:
        yield from _pem_blocks(text)
    scanned: set[int] = set()
    for trigger in _TRIGGERS.present(text):
        scanned.update(_RULES_BY_TRIGGER[trigger])
    for i in sorted(scanned):
        yield from SECRET_RULES[i].spans(text)


# --- driver ---------------------------------------------------------------------------
_NEEDS_DIGIT = frozenset({"phone", "ipv4", "credit_card", "us_ssn", "iban"})
_FINDERS: dict[str, Callable[[str], Spans]] = {
    "email": _emails,
    "phone": _phones,
    "ipv4": _ipv4s,
    "ipv6": _ipv6s,
    "credit_card": _cards,
    "us_ssn": _ssns,
    "iban": _ibans,
    "secret": _secrets,
}
_ANY_DIGIT = re.compile(r"[0-9]")
# What each of the _NEEDS_DIGIT types cannot match without (an international phone number
# aside: it needs a '+', tested apart). Each finder scans the whole text from its own start
# class, so one search for any of these shapes, jumping from digit to digit, spares most
# documents all five scans. A finder must never match where its shape is absent: keep
# these in step with the patterns above.
_DIGIT_SHAPES = re.compile(
    r"""[0-9](?:
      [0-9]{2}[-.)\ ]{1,2}[0-9]{3}[-.\ ][0-9]{4}  # North American phone (_NANP_SHAPE)
    | [0-9]{2}[-\ ][0-9]{2}[-\ ][0-9]{4}          # SSN, with dashes or spaces
    | \.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]              # IPv4, from the first octet's last digit
    | (?:[-\ ]?[0-9]){12}                          # card: 13 digits, single separators
    | (?<=[A-Z]{2}[0-9])[0-9]                      # IBAN: two capitals, two digits
    )""",
    re.VERBOSE,
)


def _scanned_types(text: str, cfg: RedactionConfig) -> list[str]:
    """The configured types worth scanning ``text`` for."""
    if _ANY_DIGIT.search(text) is None:
        return [t for t in cfg.types if t not in _NEEDS_DIGIT]
    if _DIGIT_SHAPES.search(text) is not None:
        return cfg.types
    plus = "+" in text
    return [t for t in cfg.types if t not in _NEEDS_DIGIT or (t == "phone" and plus)]


def find_pii(text: str, cfg: RedactionConfig) -> list[PIIMatch]:
    """PII spans in ``text`` of the configured types: non-overlapping, sorted by start."""
    if not cfg.enabled or not text:
        return []
    found = [PIIMatch(t, s, e) for t in _scanned_types(text, cfg) for s, e in _FINDERS[t](text)]
    found.sort(key=lambda m: m.start)
    merged: list[PIIMatch] = []
    for m in found:
        if merged and m.start < merged[-1].end:
            # Overlapping claims are merged into one span so neither leaks a fragment.
            last = merged[-1]
            winner = max(last, m, key=lambda x: (x.end - x.start, -_RANK[x.type]))
            merged[-1] = PIIMatch(winner.type, last.start, max(last.end, m.end))
        else:
            merged.append(m)
    return merged


def redact(text: str, cfg: RedactionConfig) -> tuple[str, Counter[str]]:
    """``text`` with each PII span replaced by its type's token, and the count per type."""
    counts: Counter[str] = Counter()
    parts: list[str] = []
    pos = 0
    for m in find_pii(text, cfg):
        parts += (text[pos : m.start], cfg.tokens[m.type])
        counts[m.type] += 1
        pos = m.end
    if not counts:
        return text, counts
    parts.append(text[pos:])
    return "".join(parts), counts

"""Redaction of e-mail and IP addresses.

Patterns have bounded repetitions so that a long run of address-like characters cannot
make the matcher backtrack quadratically.
"""
from __future__ import annotations

import ipaddress
import re
from collections import Counter

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
# Candidate IPv6 runs are confirmed by the standard library's parser rather than a
# hand-written grammar; the run must start and end at a word boundary.
IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]{3,45}(?![\w:])")


def _valid_ipv6(candidate: str) -> bool:
    if candidate.count(":") < 2 or sum(c.isdigit() or c in "abcdefABCDEF" for c in candidate) < 2:
        return False
    try:
        return isinstance(ipaddress.ip_address(candidate), ipaddress.IPv6Address)
    except ValueError:
        return False


def redact(
    text: str, *, emails: bool = True, ips: bool = True, email_token: str = "<EMAIL>",
    ip_token: str = "<IP_ADDRESS>",
) -> tuple[str, Counter[str]]:
    """Text with addresses replaced by tokens, and the number replaced per type."""
    counts: Counter[str] = Counter()
    if emails and "@" in text:
        text, n = EMAIL.subn(email_token, text)
        counts["email"] += n
    if ips and "." in text:
        text, n = IPV4.subn(ip_token, text)
        counts["ipv4"] += n
    if ips and ("::" in text or text.count(":") >= 7):
        def _sub(m: re.Match[str]) -> str:
            if _valid_ipv6(m.group(0)):
                counts["ipv6"] += 1
                return ip_token
            return m.group(0)

        text = IPV6_CANDIDATE.sub(_sub, text)
    return text, +counts

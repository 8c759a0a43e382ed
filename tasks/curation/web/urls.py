"""URL filtering as RefinedWeb does it: a domain block list (a domain blocks its subdomains)
and words that may not appear as a whole word of the URL."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from tasks.curation.web.config import UrlFilterConfig

_WORDS = re.compile(r"[a-z0-9]+")


def load_domains(path: str | Path) -> set[str]:
    domains = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        domain = line.split("#", 1)[0].strip().lower().rstrip(".")
        if domain:
            domains.add(domain)
    return domains


class UrlFilter:
    def __init__(self, cfg: UrlFilterConfig):
        self.domains = set(cfg.blocked_domains)
        if cfg.blocked_domains_file:
            self.domains |= load_domains(cfg.blocked_domains_file)
        self.words = set(cfg.blocked_words)

    def check(self, url: str | None) -> tuple[str, str] | None:
        """(reason, detail) when the URL is blocked, else None."""
        if not url:
            return None
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        parts = host.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in self.domains:
                return "url_blocked_domain", f"{host} is under the blocked domain {'.'.join(parts[i:])}"
        for word in _WORDS.findall(url.lower()):
            if word in self.words:
                return "url_blocked_word", f"the URL has the blocked word '{word}'"
        return None

"""Main text of an HTML page: decoded by its declared charset, then trafilatura's `extract`
(as datatrove's Trafilatura step does) or Resiliparse's main-content HTML-to-text (as DCLM
does), which drop navigation, boilerplate, scripts and styles."""

from __future__ import annotations

import codecs
import re
import signal
import threading
from contextlib import contextmanager

from tasks.curation.web.config import ExtractionConfig

# <meta charset="..."> or <meta http-equiv="Content-Type" content="text/html; charset=...">,
# looked for in the first bytes as browsers do.
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.IGNORECASE)
_SNIFF_BYTES = 4096


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def decode_html(payload: bytes, declared: str | None) -> tuple[str, str]:
    """The page as text and the encoding used: the server's charset, else the page's own
    <meta> charset, else UTF-8; bytes invalid in that encoding become U+FFFD rather than
    failing the page (a page is rarely wholly in another encoding than it says)."""
    meta = _META_CHARSET.search(payload[:_SNIFF_BYTES])
    encoding = _codec(declared) or _codec(meta.group(1).decode("ascii", "replace") if meta else None) or "utf-8"
    if encoding.startswith("utf-8") and payload.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    return payload.decode(encoding, errors="replace"), encoding


class ExtractionTimeout(Exception):
    """A page took longer than web.extraction.timeout_s to extract."""


@contextmanager
def time_limit(seconds: float):
    """Raise ExtractionTimeout in the block after `seconds`, with a real-time timer signal.
    Signals reach only the main thread: elsewhere (and for 0) the block runs unlimited."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise ExtractionTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Extractor:
    def __init__(self, cfg: ExtractionConfig):
        self.cfg = cfg

    def __call__(self, html: str) -> str:
        """The main text, '' when the extractor finds none; ExtractionTimeout past the limit."""
        with time_limit(self.cfg.timeout_s):
            return self._extract(html)

    def _extract(self, html: str) -> str:
        if self.cfg.extractor == "resiliparse":
            from resiliparse.extract.html2text import extract_plain_text
            from resiliparse.parse.html import HTMLTree

            return extract_plain_text(
                HTMLTree.parse(html), main_content=True, alt_texts=False, links=False, noscript=False, list_bullets=True
            ).strip()
        from trafilatura import extract

        text = extract(
            html,
            favor_precision=self.cfg.favor_precision,
            include_comments=False,
            include_tables=self.cfg.include_tables,
            deduplicate=self.cfg.deduplicate,
        )
        return text or ""

"""A crawled page to a document, or the reason it yields none, in FineWeb's order: the URL
filter, then main-text extraction, then language identification. The document-level rules,
quality classifier and dedup run afterwards as for any input."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tasks.curation.reader import Document
from tasks.curation.web.config import WebConfig
from tasks.curation.web.extract import ExtractionTimeout, Extractor, decode_html
from tasks.curation.web.language import LanguageId
from tasks.curation.web.pages import WebPage
from tasks.curation.web.urls import UrlFilter

HTML_TYPES = {"text/html", "application/xhtml+xml"}


@dataclass
class PageRemoved:
    reason: str
    detail: str
    text: str = ""  # what was extracted, when removal came after extraction


class WebFront:
    def __init__(self, cfg: WebConfig):
        self.cfg = cfg
        self.urls = UrlFilter(cfg.url_filter) if cfg.url_filter.enabled else None
        self.extract = Extractor(cfg.extraction)
        self.language = LanguageId(cfg.language) if cfg.language.enabled else None
        self.languages: Counter[str] = Counter()  # pages identified as each language, kept or not

    def __call__(self, page: WebPage) -> Document | PageRemoved:
        if page.status is not None and page.status != 200:
            return PageRemoved("http_status", f"HTTP {page.status}, not a page's content")
        if self.urls is not None and (blocked := self.urls.check(page.url)):
            return PageRemoved(*blocked)
        if not page.oversize and (not page.payload or page.payload.isspace()):  # isspace: no copy, as strip() makes
            return PageRemoved("empty_page", "the response has no body")
        if not page.is_text and page.content_type is not None and page.content_type not in HTML_TYPES:
            return PageRemoved("not_html", f"content type {page.content_type}")
        limit = self.cfg.extraction.max_page_bytes
        if page.oversize or len(page.payload) > limit:  # oversize: the reader did not load it at all
            return PageRemoved("page_too_large", f"{page.bytes_in} bytes, over web.extraction.max_page_bytes={limit}")
        meta: dict[str, Any] = page.metadata()
        if page.is_text:
            text, _ = decode_html(page.payload, "utf-8")
        else:
            html, meta["charset"] = decode_html(page.payload, page.charset)
            try:
                text = self.extract(html)
            except ExtractionTimeout:
                return PageRemoved(
                    "extraction_timeout",
                    f"extraction took over web.extraction.timeout_s={self.cfg.extraction.timeout_s} s",
                )
            if not text.strip():
                return PageRemoved(
                    "no_main_text", "the extractor found no main text (navigation, scripts or boilerplate only)"
                )
        if self.language is not None:
            lang, prob, why = self.language.verdict(text)
            self.languages[lang] += 1
            meta.update(language=lang, language_score=round(prob, 4))
            if why:
                return PageRemoved("language", why, text)
        return Document(
            id=page.record_id or f"{page.file}@{page.offset}",
            text=text,
            source="web",
            metadata=json.dumps(meta, ensure_ascii=False, sort_keys=True),
            bytes_in=page.bytes_in,
            file=page.file,
            line=page.offset,
        )

"""A web page as read from a crawl, before its main text is extracted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WebPage:
    url: str | None
    date: str | None  # ISO 8601: the crawl date (WARC-Date), or a file's modification time
    content_type: str | None  # media type only, e.g. text/html
    charset: str | None  # as declared by the server, if it declared one
    record_id: str | None  # WARC-Record-ID
    status: int | None  # HTTP status; None where there was no HTTP exchange (resource, file)
    payload: bytes
    is_text: bool  # a WET conversion record: the payload is already plain text
    file: str
    offset: int  # the record's byte offset in its file (in the compressed file for .gz)
    bytes_in: int  # the record's payload bytes, what accounting counts
    # Over the reader's size limit: the payload was skipped, not read into memory, and is empty.
    oversize: bool = False

    def metadata(self) -> dict[str, str]:
        meta = {
            "url": self.url,
            "crawl_date": self.date,
            "content_type": self.content_type,
            "warc_record_id": self.record_id,
        }
        return {k: v for k, v in meta.items() if v is not None}


@dataclass
class SkippedRecord:
    """A WARC record that holds no page (request, warcinfo, metadata, revisit): counted, not read."""

    record_type: str
    url: str | None
    file: str
    offset: int
    bytes_in: int

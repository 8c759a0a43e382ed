"""WARC and WET files, plain or gzipped, read with FastWARC.

Responses and resources become `WebPage`s (HTML to extract), WET conversion records `WebPage`s
of plain text, and every other record a `SkippedRecord`. A record cut short (a truncated file)
or one FastWARC cannot parse comes back as `Malformed` with its file and byte offset, and
reading goes on from the next record: the next line starting `WARC/1.` in a plain file, the
next gzip member in a .gz file (Common Crawl compresses each record as its own member).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fastwarc.warc import ArchiveIterator

from tasks.curation.reader import Malformed
from tasks.curation.web.pages import SkippedRecord, WebPage

PAGE_TYPES = {"response", "resource", "conversion"}
_GZIP_MAGIC, _WARC_MAGIC = b"\x1f\x8b\x08", b"WARC/1."
_CHUNK = 1 << 20


def _next_sync(fh: BinaryIO, start: int, magic: bytes) -> int | None:
    """The first offset at or after `start` where a record can begin, or None at the end."""
    fh.seek(start)
    base, tail = start, b""
    while chunk := fh.read(_CHUNK):
        buf = tail + chunk
        at = 0
        while (at := buf.find(magic, at)) != -1:
            pos = base - len(tail) + at
            # A plain record starts a line; a gzip member can start anywhere.
            if magic is _GZIP_MAGIC or pos == 0 or buf[at - 1 : at] == b"\n":
                return pos
            at += 1
        tail = buf[-(len(magic) - 1) :]
        base += len(chunk)
    return None


def _parses_at(fh: BinaryIO, pos: int) -> bool:
    """Whether a well-formed record, header and body, starts at `pos`."""
    fh.seek(pos)
    try:
        for rec in ArchiveIterator(fh, parse_http=False):
            rec.reader.consume()
            return str(rec.record_type) != "unknown"
    except OSError:
        return False
    return False


def _media_type(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(";")[0].strip().lower() or None


def read_warc(path: Path, max_page_bytes: int | None = None) -> Iterator[WebPage | SkippedRecord | Malformed]:
    """Every record of the file in order; a page's body over `max_page_bytes` is skipped
    (streamed past, not held in memory) and the page comes back `oversize`."""
    name = str(path)
    magic = _GZIP_MAGIC if path.name.endswith(".gz") else _WARC_MAGIC
    size = path.stat().st_size
    start: int | None = 0
    with open(path, "rb") as fh:
        while start is not None and start < size:
            fh.seek(start)
            last: int | None = None  # where the last good record began
            try:
                for rec in ArchiveIterator(fh, parse_http=True, stream_detect=True):
                    pos = rec.stream_pos  # FastWARC counts from the start of the file object
                    item = _record(rec, name, pos, max_page_bytes)  # reads the body, which can fail too
                    last = pos
                    yield item
                return
            except OSError as exc:  # FastWARC's error for a header or gzip member it cannot read
                detail = str(exc)
            lo = start if last is None else last + 1  # what is unreadable begins after the last good record
            found = start if last is None else _next_sync(fh, lo, magic)
            resume: int | None
            if found is not None and last is not None and _parses_at(fh, found):
                # The damage took the record's own start: `found` is already the next good record.
                bad, resume = lo, found
            elif found is not None:
                bad, resume = found, _next_sync(fh, found + 1, magic)
            else:  # nothing readable after the last good record: the rest of the file is lost
                bad, resume = lo, None
            end = size if resume is None else resume
            yield Malformed(
                name,
                bad,
                f"unreadable WARC record at byte {bad} ({detail}); skipped "
                f"{end - bad} bytes to {'the next record' if resume else 'the end of the file'}",
                "",
                end - bad,
            )
            start = resume


def _read_body(rec, limit: int | None) -> tuple[bytes, int, bool]:
    """The record's body, its length, and whether it was over `limit` (then the body is empty:
    at most limit + 1 bytes are held, the rest is streamed past)."""
    if limit is None:
        body = rec.reader.read()
        return body, len(body), False
    head = rec.reader.read(limit + 1)
    if len(head) <= limit:
        return head, len(head), False
    return b"", len(head) + rec.reader.consume(), True


def _record(rec, name: str, offset: int, limit: int | None) -> WebPage | SkippedRecord | Malformed:
    kind = str(rec.record_type)
    url = rec.headers.get("WARC-Target-URI")
    if kind == "unknown":  # no WARC-Type, or one the standard does not define
        rec.reader.consume()
        return Malformed(
            name,
            offset,
            f"record at byte {offset} has no valid WARC-Type header "
            f"({rec.headers.get('WARC-Type')!r}); the file is corrupt here",
            "",
            rec.content_length,
        )
    if kind not in PAGE_TYPES:
        rec.reader.consume()
        return SkippedRecord(kind, url, name, offset, rec.content_length)
    body, size, oversize = _read_body(rec, limit)
    if size < rec.content_length:
        return Malformed(
            name,
            offset,
            f"{kind} record for {url or 'an unnamed page'} at byte {offset} is "
            f"truncated: {size} of {rec.content_length} bytes; the file was cut short, "
            f"re-download it",
            "",
            size,
        )
    if rec.is_http:
        content_type, charset, status = (
            _media_type(rec.http_content_type),
            rec.http_charset,
            rec.http_headers.status_code,
        )
    else:
        content_type, charset, status = _media_type(rec.headers.get("Content-Type")), None, None
    date = rec.record_date
    return WebPage(
        url=url,
        date=date.isoformat() if date else None,
        content_type=content_type,
        charset=charset,
        record_id=rec.record_id,
        status=status,
        payload=body,
        is_text=kind == "conversion",
        file=name,
        offset=offset,
        bytes_in=size,
        oversize=oversize,
    )

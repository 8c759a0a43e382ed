"""Properties of the input readers, for Hypothesis: whatever bytes a file holds, reading it
yields documents or counted removals (never an exception, never a record lost), and the
count of what comes out matches what went in.

Shared by the short run in CI (tests/fuzz/test_readers_fuzz.py) and the long one
(benchmarks/fuzz_readers.py, which reports inputs tried and failures found).
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import strategies as st

from tasks.curation.reader import Document, InputError, Malformed, read_documents
from tasks.curation.web.pages import SkippedRecord, WebPage

# Lines as a crawl delivers them: valid records, records with odd fields, broken JSON,
# lone surrogate escapes, deep nesting, and raw bytes in any encoding.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=60)
_RECORD = st.fixed_dictionaries(
    {"text": st.one_of(_TEXT, st.integers(), st.none(), st.lists(_TEXT, max_size=2))},
    optional={
        "id": st.one_of(_TEXT, st.integers()),
        "metadata": st.one_of(st.dictionaries(_TEXT, _TEXT, max_size=2), _TEXT),
    },
)
LINE = st.one_of(
    _RECORD.map(lambda r: json.dumps(r).encode()),
    _RECORD.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8")),
    st.sampled_from([b'{"text": "\\ud800 x"}', b"[" * 5000, b'{"text": "a"', b"{}", b"null", b"\xff\xfe{}", b"   "]),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
)
JSONL = st.tuples(st.lists(LINE, max_size=20), st.sampled_from(["plain", "gz", "zst"]), st.floats(0.0, 1.0))


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def check_jsonl(case: tuple[list[bytes], str, float]) -> None:
    """Every non-blank line is a Document or a Malformed record, in order, and a cut archive
    is at most one counted damaged_file at the end."""
    lines, packing, cut = case
    raw = b"".join(line + b"\n" for line in lines)
    expected = sum(1 for line in lines if line.strip())
    with tempfile.TemporaryDirectory() as tmp:
        if packing == "plain":
            path = _write(Path(tmp), "x.jsonl", raw)
        else:
            packed = gzip.compress(raw) if packing == "gz" else zstandard.ZstdCompressor().compress(raw)
            keep = len(packed) if cut > 0.8 else int(len(packed) * cut)
            path = _write(Path(tmp), f"x.jsonl.{packing}", packed[:keep])
        items = list(read_documents(path, max_record_bytes=4096))
    assert all(isinstance(i, (Document, Malformed)) for i in items)
    damaged = [i for i in items if isinstance(i, Malformed) and i.reason == "damaged_file"]
    records = [i for i in items if not (isinstance(i, Malformed) and i.reason == "damaged_file")]
    assert len(damaged) <= 1 and (not damaged or items[-1] is damaged[0])
    if damaged or (packing != "plain" and cut <= 0.8):
        assert len(records) <= expected  # a cut file: what precedes the cut, then the damage
    else:
        assert len(records) == expected
    for item in records:
        item_text = item.text if isinstance(item, Document) else item.raw
        item_text.encode("utf-8")  # everything handed on can be written out as UTF-8


PARQUET = st.lists(st.one_of(_TEXT, st.none()), max_size=30)


def check_parquet(texts: list[str | None]) -> None:
    """A Parquet file of any rows: one item per row, documents for strings, malformed for nulls."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.parquet"
        pq.write_table(pa.table({"text": pa.array(texts, type=pa.string())}), path)
        items = list(read_documents(path))
    assert len(items) == len(texts)
    for text, item in zip(texts, items, strict=True):
        assert isinstance(item, Document if text is not None else Malformed)


WARC = st.tuples(st.lists(st.binary(max_size=300), min_size=1, max_size=4), st.booleans())


def _warc_record(body: bytes, i: int) -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: https://example.com/{i}\r\n"
        f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{i:012d}>\r\n"
        "Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n\r\n"


def check_warc(case: tuple[list[bytes], bool]) -> None:
    """Records with any payload, some with their bytes garbled: each is a page, a skipped
    record or a counted malformed one; reading never raises."""
    bodies, garble = case
    data = b"".join(
        _warc_record(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + b, i) for i, b in enumerate(bodies)
    )
    if garble:
        data = data[: len(data) // 2] + bytes(reversed(data[len(data) // 2 :]))
    with tempfile.TemporaryDirectory() as tmp:
        items = list(read_documents(_write(Path(tmp), "x.warc", data)))
    assert all(isinstance(i, (WebPage, SkippedRecord, Malformed)) for i in items)
    if not garble:
        assert sum(isinstance(i, WebPage) for i in items) == len(bodies)


HTML = st.lists(st.binary(max_size=400), min_size=1, max_size=5)


def check_html(pages: list[bytes]) -> None:
    """A folder of saved pages with any bytes: one item per page."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, page in enumerate(pages):
            _write(Path(tmp), f"p{i}.html", page)
        try:
            items = list(read_documents(Path(tmp)))
        except InputError as exc:  # allowed only as the reader's own, named error
            raise AssertionError(f"a folder of pages raised {exc}") from exc
    assert len(items) == len(pages)
    assert all(isinstance(i, (WebPage, Malformed)) for i in items)


PROPERTIES = {"jsonl": (JSONL, check_jsonl), "parquet": (PARQUET, check_parquet), "warc": (WARC, check_warc),
              "html": (HTML, check_html)}  # fmt: skip

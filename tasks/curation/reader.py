"""Read input documents from JSONL or Parquet files, plain or .gz/.zst compressed, and web
pages from WARC/WET files and folders of HTML (tasks/curation/web/).

A record that cannot be used (bad JSON, not UTF-8, a lone surrogate, no text field, a
truncated WARC record, a record over `max_record_bytes`) is not dropped silently: it comes
back as a `Malformed` item that the caller counts and writes to `removed/`. So does the
damaged end of a file (a cut .gz or .zst, a corrupt Parquet page): the documents before it
are read, and the damage is one counted `damaged_file` item naming where it broke. A file
that cannot be opened at all (no Parquet footer, no text column) is an `InputError`.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")  # Common Crawl's WET files end .warc.wet.gz
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
INPUT_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES + WARC_SUFFIXES


class InputError(ValueError):
    """Input that cannot be read at all; the message names the file and the fix."""


@dataclass
class Document:
    id: str
    text: str
    source: str
    metadata: str  # JSON object, kept as text so Parquet schemas stay uniform
    bytes_in: int
    file: str
    line: int


@dataclass
class Malformed:
    """A record, or the damaged end of a file, that yields no document. `reason` is the
    removal reason it is counted under: `malformed`, `record_too_large` or `damaged_file`."""

    file: str
    line: int
    detail: str
    raw: str
    bytes_in: int
    reason: str = "malformed"


RAW_KEPT_CHARS = 2000  # how much of an oversize record removed/ keeps, to show what it was


def discover_inputs(path: str | Path) -> tuple[list[Path], list[Path]]:
    """Inputs under `path` in a stable order, and files skipped for their extension.

    An input is a JSONL/Parquet/WARC file, or a folder holding HTML pages (all the pages
    directly in it are one input, so a documentation tree is not one task per page)."""
    root = Path(path)
    if not root.exists():
        raise InputError(
            f"input path {root} does not exist; set curation.input_path to a folder or file "
            f"of {', '.join(INPUT_SUFFIXES + HTML_SUFFIXES)} documents"
        )
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    candidates = [p for p in candidates if not p.name.startswith(".")]
    inputs = [p for p in candidates if p.name.endswith(INPUT_SUFFIXES)]
    html = [p for p in candidates if is_html_page(p)]
    taken = set(inputs) | set(html)  # a set: an HTML tree holds many thousands of files
    skipped = [p for p in candidates if p not in taken]
    folders = sorted({p.parent for p in html}) if root.is_dir() else []
    if root.is_file() and html:
        raise InputError(
            f"{root} is one HTML page; point curation.input_path at its folder, whose pages are read together"
        )
    inputs = sorted(inputs + folders)
    if not inputs:
        raise InputError(
            f"no input files in {root} (found {len(skipped)} file(s) with other extensions); "
            f"expected {', '.join(INPUT_SUFFIXES + HTML_SUFFIXES)}; put documents there or point "
            f"curation.input_path elsewhere"
        )
    return inputs, skipped


def input_fingerprint(path: Path) -> list[int]:
    """Size and modification time of an input, to tell a changed one (a folder of pages: the
    pages' total size and newest time, and their number)."""
    if path.is_dir():
        from tasks.curation.web.html_files import html_files

        stats = [p.stat() for p in html_files(path)]
        return [sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0), len(stats)]
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def inputs_fingerprint(files: list[Path]) -> list[list]:
    """Name, size and modification time of each input: what decides if earlier work still holds."""
    return [[str(f), *input_fingerprint(f)] for f in files]


def is_html_page(path: Path) -> bool:
    """A saved page that an HTML-folder input reads (hidden files are not pages)."""
    return path.name.lower().endswith(HTML_SUFFIXES) and not path.name.startswith(".")


def is_web_input(path: Path) -> bool:
    return path.is_dir() or path.name.endswith(WARC_SUFFIXES)


class _ZstdFrames(io.RawIOBase):
    """The decompressed bytes of every zstd frame in a file, and an error if the file ends
    inside a frame: zstandard's stream reader returns what it has at the end of a cut file
    without saying so, which lost the rest of the documents silently."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh  # closed with this reader
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._in_frame = False
        self._out = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._pos >= len(self._out):
            chunk = self._fh.read(1 << 16)
            if not chunk:
                if self._in_frame:
                    raise EOFError("the file ends inside a zstd frame")
                return 0
            self._out, self._pos = self._decompress(chunk), 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def _decompress(self, chunk: bytes) -> bytes:
        parts = []
        while chunk:
            if self._frame.eof:  # the next frame of a multi-frame file
                self._frame = self._dctx.decompressobj()
            parts.append(self._frame.decompress(chunk))
            self._in_frame = not self._frame.eof
            chunk = self._frame.unused_data if self._frame.eof else b""
        return b"".join(parts)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        return io.BufferedReader(_ZstdFrames(open(path, "rb")), buffer_size=1 << 16)
    return open(path, "rb")


def _lines(fh: io.BufferedIOBase, limit: int | None) -> Iterator[tuple[bytes, int]]:
    """Each line and its size; a line over `limit` bytes is not held in memory: it comes
    back as its first `limit` bytes with its full size."""
    while True:
        line = fh.readline(limit + 1) if limit else fh.readline()
        if not line:
            return
        size = len(line)
        if limit and size > limit and not line.endswith(b"\n"):
            while rest := fh.readline(1 << 20):  # skip the rest of the record, counting it
                size += len(rest)
                if rest.endswith(b"\n"):
                    break
        yield line, size


def _unencodable_field(doc: Document, names: tuple[str, ...]) -> str | None:
    """The first of `names` holding a lone surrogate (a `\\ud800`-style escape in the JSON,
    which Python decodes but UTF-8 cannot encode), or None."""
    for name in names:
        try:
            getattr(doc, name).encode("utf-8")
        except UnicodeEncodeError:
            return name
    return None


def _as_document(
    obj: object, file: str, line: int, text_field: str, id_field: str, bytes_in: int, raw: str
) -> Document | Malformed:
    """`bytes_in` is the record's raw size, counted for malformed records; documents count their text."""
    if not isinstance(obj, dict):
        return Malformed(file, line, f"record is a JSON {type(obj).__name__}, not an object", raw, bytes_in)
    text = obj.get(text_field)
    if text is None:
        return Malformed(file, line, f"record has no '{text_field}' field (set curation.text_field)", raw, bytes_in)
    if not isinstance(text, str):
        return Malformed(file, line, f"'{text_field}' is a {type(text).__name__}, not a string", raw, bytes_in)
    doc_id = obj.get(id_field)
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        metadata = {"value": metadata}
    doc = Document(
        id=str(doc_id) if doc_id is not None else f"{Path(file).name}:{line}",
        text=text,
        source=str(obj.get("source") or "unknown"),
        metadata=json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str),
        bytes_in=0,
        file=file,
        line=line,
    )
    try:
        doc.bytes_in = len(text.encode("utf-8"))  # the text's size, and proof that it is text
        field = _unencodable_field(doc, ("id", "source", "metadata"))
    except UnicodeEncodeError:
        field = "text"
    if field is not None:
        detail = (
            f"'{field}' holds a lone surrogate escape (\\ud800-\\udfff without its pair), which is not "
            f"text; fix the producer, or replace such escapes with \\ufffd before curating"
        )
        return Malformed(file, line, detail, raw, bytes_in)
    return doc


def _read_jsonl(
    path: Path, text_field: str, id_field: str, max_record_bytes: int | None
) -> Iterator[Document | Malformed]:
    name = str(path)
    lineno = 0
    try:
        with _open_binary(path) as fh:
            for raw_bytes, size in _lines(fh, max_record_bytes):
                lineno += 1
                if max_record_bytes and size > max_record_bytes:
                    detail = (
                        f"record of {size} bytes is over curation.max_record_bytes ({max_record_bytes}); "
                        f"raise the limit if such records are wanted"
                    )
                    raw = raw_bytes[:RAW_KEPT_CHARS].decode("utf-8", "replace")
                    yield Malformed(name, lineno, detail, raw, size, "record_too_large")
                    continue
                if not raw_bytes.strip():
                    continue
                try:
                    raw = raw_bytes.decode("utf-8")
                except UnicodeDecodeError as exc:
                    detail = (
                        f"line is not valid UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at offset "
                        f"{exc.start}); re-encode the file as UTF-8"
                    )
                    yield Malformed(name, lineno, detail, raw_bytes.decode("utf-8", "replace"), size)
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    yield Malformed(name, lineno, f"invalid JSON: {exc.msg} at column {exc.colno}", raw, size)
                    continue
                except RecursionError:
                    detail = "invalid JSON: nested deeper than Python's parser allows (an unclosed run of [ or {?)"
                    yield Malformed(name, lineno, detail, raw[:RAW_KEPT_CHARS], size)
                    continue
                yield _as_document(obj, name, lineno, text_field, id_field, size, raw)
    except (EOFError, OSError, zstandard.ZstdError) as exc:
        # Counted, not raised: the documents before the damage are kept, and the damage is one
        # `damaged_file` removal that names the file and where it broke, in the run's totals.
        log.warning("%s is truncated or corrupt after line %d (%s); the rest of it is lost", path, lineno, exc)
        detail = (
            f"the file is truncated or corrupt after line {lineno} ({exc}); whatever followed is lost: "
            f"re-create or re-download it"
        )
        yield Malformed(name, lineno + 1, detail, "", 0, "damaged_file")


def _is_string_view(kind: pa.DataType) -> bool:
    return bool(getattr(pa.types, "is_string_view", lambda _: False)(kind))


def open_parquet(path: Path, text_field: str) -> pq.ParquetFile:
    """The file, once its footer reads and it has a text column of strings; else an InputError
    (checked for every Parquet input before a run starts, so a run does not stop on one later)."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc}); re-create or remove it") from None
    schema = pf.schema_arrow
    fix = "set curation.text_field to the column that holds the text"
    if text_field not in schema.names:
        raise InputError(f"{path}: no column '{text_field}' (columns: {', '.join(schema.names)}); {fix}")
    kind = schema.field(text_field).type
    values = kind.value_type if pa.types.is_dictionary(kind) else kind  # a pandas Categorical's column
    text_types = (pa.types.is_string, pa.types.is_large_string, _is_string_view, pa.types.is_null)
    if not any(is_type(values) for is_type in text_types):
        raise InputError(f"{path}: column '{text_field}' holds {kind}, not strings; {fix}")
    return pf


def _read_parquet(
    path: Path, text_field: str, id_field: str, max_record_bytes: int | None
) -> Iterator[Document | Malformed]:
    pf = open_parquet(path, text_field)
    row = 0
    batches = pf.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a damaged page or column chunk behind a readable footer
            log.warning("%s is corrupt after row %d (%s); the rest of it is lost", path, row, exc)
            detail = f"the file is corrupt after row {row} ({exc}); whatever followed is lost: re-create it"
            yield Malformed(str(path), row + 1, detail, "", 0, "damaged_file")
            return
        if batch is None:
            return
        for obj in batch.to_pylist():
            row += 1
            raw = json.dumps(obj, ensure_ascii=False, default=str)
            size = len(raw.encode("utf-8", "surrogatepass"))
            if max_record_bytes and size > max_record_bytes:
                detail = f"row of {size} bytes is over curation.max_record_bytes ({max_record_bytes})"
                yield Malformed(str(path), row, detail, raw[:RAW_KEPT_CHARS], size, "record_too_large")
                continue
            yield _as_document(obj, str(path), row, text_field, id_field, size, raw)


def read_documents(
    path: Path,
    text_field: str = "text",
    id_field: str = "id",
    max_page_bytes: int | None = None,
    max_record_bytes: int | None = None,
) -> Iterator:
    """Items of one input in order: `Document`s and `Malformed` records of a JSONL or Parquet
    file (`line` the 1-based line or row), and for web inputs `WebPage`s and `SkippedRecord`s
    (tasks/curation/web/pages.py; `offset` the record's byte offset) for the web front end.
    A web page over `max_page_bytes` is not read into memory: it comes with no payload and
    `oversize` set, for the front end to count; a JSONL or Parquet record over
    `max_record_bytes` is a `Malformed` item counted as `record_too_large`."""
    if path.is_dir():
        from tasks.curation.web.html_files import (
            read_html_folder,  # FastWARC and the extractors load only for web input
        )

        return read_html_folder(path, max_page_bytes)
    if path.name.endswith(WARC_SUFFIXES):
        from tasks.curation.web.warc import read_warc

        return read_warc(path, max_page_bytes)
    if path.name.endswith(PARQUET_SUFFIXES):
        return _read_parquet(path, text_field, id_field, max_record_bytes)
    return _read_jsonl(path, text_field, id_field, max_record_bytes)

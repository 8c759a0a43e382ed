"""Read input documents from JSONL or Parquet files, plain or .gz/.zst compressed, and web
pages from WARC/WET files and folders of HTML (tasks/curation/web/).

A record that cannot be used (bad JSON, not UTF-8, no text field, a truncated WARC record)
is not dropped silently: it comes back as a `Malformed` item that the caller counts and
writes to `removed/`.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    file: str
    line: int
    detail: str
    raw: str
    bytes_in: int


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


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        # The zstd reader has no readline; buffering it gives line iteration.
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


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
    return Document(
        id=str(doc_id) if doc_id is not None else f"{Path(file).name}:{line}",
        text=text,
        source=str(obj.get("source") or "unknown"),
        metadata=json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str),
        bytes_in=len(text.encode("utf-8")),
        file=file,
        line=line,
    )


def _read_jsonl(path: Path, text_field: str, id_field: str) -> Iterator[Document | Malformed]:
    name = str(path)
    try:
        with _open_binary(path) as fh:
            for lineno, raw_bytes in enumerate(fh, start=1):
                if not raw_bytes.strip():
                    continue
                size = len(raw_bytes)
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
                yield _as_document(obj, name, lineno, text_field, id_field, size, raw)
    except (EOFError, OSError, zstandard.ZstdError) as exc:
        raise InputError(
            f"{path}: cannot read the file ({exc}); the file is truncated or corrupt, re-create or remove it"
        ) from exc


def _read_parquet(path: Path, text_field: str, id_field: str) -> Iterator[Document | Malformed]:
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc}); re-create or remove it") from exc
    columns = pf.schema_arrow.names
    if text_field not in columns:
        raise InputError(
            f"{path}: no column '{text_field}' (columns: {', '.join(columns)}); "
            f"set curation.text_field to the column that holds the text"
        )
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for obj in batch.to_pylist():
            row += 1
            raw = json.dumps(obj, ensure_ascii=False, default=str)
            yield _as_document(obj, str(path), row, text_field, id_field, len(raw.encode("utf-8")), raw)


def read_documents(
    path: Path, text_field: str = "text", id_field: str = "id", max_page_bytes: int | None = None
) -> Iterator:
    """Items of one input in order: `Document`s and `Malformed` records of a JSONL or Parquet
    file (`line` the 1-based line or row), and for web inputs `WebPage`s and `SkippedRecord`s
    (tasks/curation/web/pages.py; `offset` the record's byte offset) for the web front end.
    A web page over `max_page_bytes` is not read into memory: it comes with no payload and
    `oversize` set, for the front end to count."""
    if path.is_dir():
        from tasks.curation.web.html_files import (
            read_html_folder,  # FastWARC and the extractors load only for web input
        )

        return read_html_folder(path, max_page_bytes)
    if path.name.endswith(WARC_SUFFIXES):
        from tasks.curation.web.warc import read_warc

        return read_warc(path, max_page_bytes)
    if path.name.endswith(PARQUET_SUFFIXES):
        return _read_parquet(path, text_field, id_field)
    return _read_jsonl(path, text_field, id_field)

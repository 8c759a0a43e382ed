import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tasks.curation.reader import Document, InputError, Malformed, discover_inputs, read_documents

GOOD = {"id": "a", "text": "hello world", "source": "web", "metadata": {"k": 1}}


def _jsonl(path, lines):
    path.write_bytes(b"".join(lines))
    return path


def test_reads_documents_with_defaults(tmp_path):
    p = _jsonl(tmp_path / "x.jsonl", [json.dumps(GOOD).encode() + b"\n", b'{"text": "no id"}\n'])
    docs = list(read_documents(p))
    assert [d.id for d in docs] == ["a", "x.jsonl:2"]
    assert docs[1].source == "unknown" and json.loads(docs[0].metadata) == {"k": 1}
    assert docs[0].bytes_in == len("hello world")


def test_malformed_json_names_file_and_line(tmp_path):
    p = _jsonl(tmp_path / "x.jsonl", [json.dumps(GOOD).encode() + b"\n", b'{"text": "unterminated\n'])
    bad = list(read_documents(p))[1]
    assert isinstance(bad, Malformed) and bad.line == 2 and bad.file.endswith("x.jsonl")
    assert "invalid JSON" in bad.detail


def test_non_utf8_line_is_malformed_with_the_fix(tmp_path):
    p = _jsonl(tmp_path / "x.jsonl", [b'{"text": "caf\xe9"}\n', json.dumps(GOOD).encode() + b"\n"])
    items = list(read_documents(p))
    assert isinstance(items[0], Malformed) and "not valid UTF-8" in items[0].detail
    assert "re-encode" in items[0].detail
    assert isinstance(items[1], Document)


@pytest.mark.parametrize(
    "record, detail",
    [
        ({"id": "1", "body": "x"}, "no 'text' field"),
        ({"text": 5}, "not a string"),
        ([1, 2], "not an object"),
    ],
)
def test_unusable_records_are_malformed(tmp_path, record, detail):
    p = _jsonl(tmp_path / "x.jsonl", [json.dumps(record).encode() + b"\n"])
    (item,) = read_documents(p)
    assert isinstance(item, Malformed) and detail in item.detail


def test_custom_text_field(tmp_path):
    p = _jsonl(tmp_path / "x.jsonl", [b'{"content": "hi there"}\n'])
    (item,) = read_documents(p, text_field="content")
    assert isinstance(item, Document) and item.text == "hi there"


def test_compressed_inputs(tmp_path):
    raw = (json.dumps(GOOD) + "\n").encode()
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(raw))
    zst = tmp_path / "b.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw))
    for p in (gz, zst):
        (doc,) = read_documents(p)
        assert doc.text == "hello world"


def test_truncated_gzip_is_a_clear_error(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    p.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode() * 100)[:40])
    with pytest.raises(InputError, match=r"a.jsonl.gz.*truncated or corrupt"):
        list(read_documents(p))


def test_parquet_input_and_missing_column(tmp_path):
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["1", "2"], "text": ["one doc", None]}), p)
    items = list(read_documents(p))
    assert isinstance(items[0], Document) and isinstance(items[1], Malformed)
    pq.write_table(pa.table({"body": ["x"]}), p)
    with pytest.raises(InputError, match=r"no column 'text' \(columns: body\).*curation.text_field"):
        list(read_documents(p))


def test_not_parquet_is_a_clear_error(tmp_path):
    p = tmp_path / "d.parquet"
    p.write_text("not parquet")
    with pytest.raises(InputError, match=r"d\.parquet: not a readable Parquet file"):
        list(read_documents(p))


def test_discovery_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"no input files in .*found 1 file\(s\) with other extensions"):
        discover_inputs(tmp_path)
    with pytest.raises(InputError, match=r"does not exist.*curation\.input_path"):
        discover_inputs(tmp_path / "missing")


def test_discovery_is_sorted_and_reports_skipped(tmp_path):
    for name in ("b.jsonl", "a.parquet", "c.txt", ".hidden.jsonl"):
        (tmp_path / name).write_text("")
    inputs, skipped = discover_inputs(tmp_path)
    assert [p.name for p in inputs] == ["a.parquet", "b.jsonl"]
    assert [p.name for p in skipped] == ["c.txt"]

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


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "suffix, compress",
    [(".jsonl.gz", gzip.compress), (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b))],
)
def test_a_cut_archive_keeps_what_precedes_the_cut_and_counts_the_damage(tmp_path, suffix, compress):
    lines = [json.dumps({"id": str(i), "text": f"document {i} " * 20}).encode() + b"\n" for i in range(5000)]
    p = tmp_path / f"a{suffix}"
    p.write_bytes(_cut(compress(b"".join(lines))))
    items = list(read_documents(p))
    *docs, damage = items
    assert all(isinstance(d, Document) for d in docs) and 0 < len(docs) < 5000
    assert [d.id for d in docs] == [str(i) for i in range(len(docs))]
    assert isinstance(damage, Malformed) and damage.reason == "damaged_file"
    assert damage.line == len(docs) + 1 and damage.file.endswith(f"a{suffix}")
    assert f"truncated or corrupt after line {len(docs)}" in damage.detail and "re-download" in damage.detail


def test_a_whole_multi_frame_zst_is_read_to_its_end(tmp_path):
    z = zstandard.ZstdCompressor()
    p = tmp_path / "a.jsonl.zst"
    p.write_bytes(b"".join(z.compress(json.dumps({"text": f"part {i}"}).encode() + b"\n") for i in range(3)))
    assert [d.text for d in read_documents(p)] == ["part 0", "part 1", "part 2"]


def test_a_zst_of_garbage_is_counted_as_damaged(tmp_path):
    p = tmp_path / "a.jsonl.zst"
    p.write_bytes(b"this is not zstd at all\n" * 10)
    (item,) = read_documents(p)
    assert isinstance(item, Malformed) and item.reason == "damaged_file" and item.line == 1


def test_a_lone_surrogate_is_malformed_not_a_crash(tmp_path):
    # json.loads turns "\ud800" into a str that UTF-8 cannot encode; every later write failed.
    lines = [json.dumps(GOOD).encode() + b"\n", b'{"text": "bad \\ud800 here"}\n', b'{"text": "ok", "id": "\\udfff"}\n']
    good, bad_text, bad_id = read_documents(_jsonl(tmp_path / "x.jsonl", lines))
    assert isinstance(good, Document)
    for item, field in ((bad_text, "text"), (bad_id, "id")):
        assert isinstance(item, Malformed) and item.reason == "malformed"
        assert f"'{field}' holds a lone surrogate" in item.detail
        assert item.raw.encode("utf-8")  # the raw line (escapes intact) can be written to removed/
    assert bad_text.line == 2 and bad_id.line == 3


def test_json_nested_too_deep_is_malformed(tmp_path):
    p = _jsonl(tmp_path / "x.jsonl", [b"[" * 100_000 + b"\n", json.dumps(GOOD).encode() + b"\n"])
    bad, good = read_documents(p)
    assert isinstance(bad, Malformed) and "nested deeper" in bad.detail and bad.line == 1
    assert len(bad.raw) <= 2000 and isinstance(good, Document)


def test_a_record_over_the_size_limit_is_counted_without_being_held(tmp_path):
    big = json.dumps({"text": "x" * 50_000}).encode() + b"\n"
    p = _jsonl(tmp_path / "x.jsonl", [big, json.dumps(GOOD).encode() + b"\n", big[:-1]])
    over, good, last = read_documents(p, max_record_bytes=10_000)
    assert isinstance(over, Malformed) and over.reason == "record_too_large"
    assert over.bytes_in == len(big) and over.line == 1 and len(over.raw) == 2000
    assert "curation.max_record_bytes (10000)" in over.detail
    assert isinstance(good, Document) and good.line == 2
    assert isinstance(last, Malformed) and last.bytes_in == len(big) - 1 and last.line == 3
    (whole,) = read_documents(_jsonl(tmp_path / "y.jsonl", [big]), max_record_bytes=len(big))
    assert isinstance(whole, Document)


def test_a_parquet_row_over_the_size_limit_is_counted(tmp_path):
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["small", "y" * 5000]}), p)
    small, big = read_documents(p, max_record_bytes=1024)
    assert isinstance(small, Document) and isinstance(big, Malformed) and big.reason == "record_too_large"


def test_a_corrupt_parquet_page_behind_a_good_footer_is_counted(tmp_path):
    p = tmp_path / "d.parquet"
    texts = [f"row {i} " + "z" * (i % 50) for i in range(20_000)]
    pq.write_table(pa.table({"text": texts}), p, row_group_size=5000, compression="none")
    data = bytearray(p.read_bytes())
    start = len(data) // 2
    data[start : start + 4000] = b"\xff" * 4000  # inside a later row group's pages
    p.write_bytes(bytes(data))
    items = list(read_documents(p))
    *docs, damage = items
    assert all(isinstance(d, Document) for d in docs) and 0 < len(docs) < 20_000
    assert [d.line for d in docs] == list(range(1, len(docs) + 1))
    assert isinstance(damage, Malformed) and damage.reason == "damaged_file" and damage.line == len(docs) + 1


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


def test_a_dictionary_encoded_text_column_is_read(tmp_path):
    # What pandas writes for a Categorical column: strings behind a dictionary.
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array(["one doc", "two docs", "one doc"]).dictionary_encode()}), p)
    assert [d.text for d in read_documents(p)] == ["one doc", "two docs", "one doc"]

"""Reading WARC/WET files and HTML folders: every record accounted for, bad ones named."""

from __future__ import annotations

import gzip

import pytest
from warc_fixtures import ENGLISH, article, record, write_warc

from tasks.curation.reader import InputError, Malformed, discover_inputs, read_documents
from tasks.curation.web.pages import SkippedRecord, WebPage


def pages(n: int) -> list[bytes]:
    return [record("response", f"https://example.com/{i}", article(f"Page {i}", ENGLISH).encode()) for i in range(n)]


def test_every_record_type_is_read_or_counted(tmp_path):
    recs = [
        record("warcinfo", None, b"software: test\r\n", content_type="application/warc-fields"),
        record("request", "https://example.com/a", b""),
        record("response", "https://example.com/a", article("A", ENGLISH).encode()),
        record("metadata", "https://example.com/a", b"fetchTimeMs: 12\r\n", content_type="application/warc-fields"),
        record("resource", "file:///docs/b.html", article("B", ENGLISH).encode(), content_type="text/html"),
        record("revisit", "https://example.com/a", b""),
        record("conversion", "https://example.com/c", ENGLISH.encode(), content_type="text/plain"),
    ]
    items = list(read_documents(write_warc(tmp_path / "x.warc.gz", recs)))
    assert [type(i).__name__ for i in items] == [
        "SkippedRecord",
        "SkippedRecord",
        "WebPage",
        "SkippedRecord",
        "WebPage",
        "SkippedRecord",
        "WebPage",
    ]
    assert [i.record_type for i in items if isinstance(i, SkippedRecord)] == [
        "warcinfo",
        "request",
        "metadata",
        "revisit",
    ]
    response, resource, conversion = (i for i in items if isinstance(i, WebPage))
    assert response.url == "https://example.com/a" and response.status == 200
    assert response.content_type == "text/html" and response.charset == "utf-8"
    assert response.date.startswith("2024-05-06T07:08:09") and response.record_id.startswith("<urn:uuid:")
    assert response.payload.startswith(b"<!DOCTYPE html>")  # HTTP headers are not part of the page
    assert resource.status is None and resource.content_type == "text/html" and not resource.is_text
    assert conversion.is_text and conversion.payload == ENGLISH.encode()
    # Offsets point at each record's gzip member, so a removed/ row leads back to the bytes.
    with open(tmp_path / "x.warc.gz", "rb") as fh:
        fh.seek(response.offset)
        assert b"https://example.com/a" in gzip.GzipFile(fileobj=fh).read(2000)


@pytest.mark.parametrize("name", ["x.warc", "x.warc.gz"])
def test_a_truncated_last_record_is_malformed_with_its_offset(tmp_path, name):
    path = write_warc(tmp_path / name, pages(3))
    whole = path.read_bytes()
    path.write_bytes(whole[:-60])
    items = list(read_documents(path))
    assert [type(i).__name__ for i in items] == ["WebPage", "WebPage", "Malformed"]
    bad = items[-1]
    assert bad.file == str(path) and bad.line > items[1].offset
    assert "truncated" in bad.detail and "https://example.com/2" in bad.detail


@pytest.mark.parametrize("name", ["x.warc", "x.warc.gz"])
def test_a_corrupt_record_is_skipped_and_the_rest_of_the_file_read(tmp_path, name):
    recs = pages(4)
    path = write_warc(tmp_path / name, recs)
    data = bytearray(path.read_bytes())
    second = len(gzip.compress(recs[0])) if name.endswith(".gz") else len(recs[0])
    data[second + 12 : second + 40] = b"\x00" * 28  # inside the second record's header (or gzip stream)
    path.write_bytes(bytes(data))
    items = list(read_documents(path))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["WebPage", "Malformed", "WebPage", "WebPage"]
    assert [i.url for i in items if isinstance(i, WebPage)] == [
        "https://example.com/0",
        "https://example.com/2",
        "https://example.com/3",
    ]
    bad = items[1]
    assert isinstance(bad, Malformed) and bad.line == second and 0 < bad.bytes_in <= items[2].offset - second


# Damage inside a plain record's body is not detectable without digests (these have none):
# a gzip member's is.
@pytest.mark.parametrize(("name", "where"), [("x.warc", "start"), ("x.warc.gz", "start"), ("x.warc.gz", "body")])
def test_damage_to_a_records_start_or_body_loses_only_that_record(tmp_path, name, where):
    recs = pages(4)
    path = write_warc(tmp_path / name, recs)
    data = bytearray(path.read_bytes())
    sizes = [len(gzip.compress(r)) for r in recs] if name.endswith(".gz") else [len(r) for r in recs]
    second = sizes[0]
    at = second if where == "start" else second + sizes[1] // 2
    data[at : at + 24] = b"\xff" * 24  # the record's magic (WARC/1.1 or the gzip header), or its middle
    path.write_bytes(bytes(data))
    items = list(read_documents(path))
    assert [i.url for i in items if isinstance(i, WebPage)] == [
        "https://example.com/0",
        "https://example.com/2",
        "https://example.com/3",
    ]
    assert sum(isinstance(i, Malformed) for i in items) == 1


def test_damage_at_the_end_of_a_file_is_counted(tmp_path):
    recs = pages(2)
    path = write_warc(tmp_path / "x.warc.gz", recs)
    data = bytearray(path.read_bytes())
    first = len(gzip.compress(recs[0]))
    data[first : first + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))
    items = list(read_documents(path))
    assert isinstance(items[0], WebPage) and isinstance(items[1], Malformed) and len(items) == 2
    assert items[1].bytes_in > 0 and "end of the file" in items[1].detail


def test_a_file_that_is_not_warc_is_one_malformed_item(tmp_path):
    path = tmp_path / "x.warc"
    path.write_bytes(b"this is not a WARC file\n" * 10)
    items = list(read_documents(path))
    assert len(items) == 1 and isinstance(items[0], Malformed) and items[0].bytes_in == path.stat().st_size


def test_html_folders_are_one_input_each(tmp_path):
    (tmp_path / "docs" / "fr").mkdir(parents=True)
    for rel in ["docs/a.html", "docs/b.htm", "docs/fr/c.html"]:
        (tmp_path / rel).write_text(article(rel, ENGLISH), encoding="utf-8")
    (tmp_path / "docs" / "style.css").write_text("body {}")
    write_warc(tmp_path / "crawl.warc.gz", pages(1))
    inputs, skipped = discover_inputs(tmp_path)
    assert inputs == [tmp_path / "crawl.warc.gz", tmp_path / "docs", tmp_path / "docs" / "fr"]
    assert skipped == [tmp_path / "docs" / "style.css"]
    got = list(read_documents(tmp_path / "docs"))
    assert [p.url.rsplit("/", 2)[-1] for p in got] == ["a.html", "b.htm"]
    assert all(p.url.startswith("file://") and p.content_type == "text/html" for p in got)
    with pytest.raises(InputError, match=r"point curation\.input_path at its folder"):
        discover_inputs(tmp_path / "docs" / "a.html")


@pytest.mark.parametrize("name", ["x.warc", "x.warc.gz"])
def test_a_page_over_the_size_limit_is_streamed_past_not_loaded(tmp_path, name):
    big = article("Big", ENGLISH * 200).encode()
    recs = [record("response", "https://example.com/big", big), *pages(1)]
    path = write_warc(tmp_path / name, recs)
    over, after = read_documents(path, max_page_bytes=len(big) - 1)
    assert over.oversize and over.payload == b"" and over.bytes_in == len(big)
    assert not after.oversize and after.url == "https://example.com/0" and after.payload.startswith(b"<!DOCTYPE")
    at_limit, _ = read_documents(path, max_page_bytes=len(big))
    assert not at_limit.oversize and at_limit.payload == big
    # An oversize record cut short is still truncated, not a page.
    path.write_bytes(write_warc(tmp_path / ("cut" + name), recs[:1]).read_bytes()[:-200])
    (bad,) = read_documents(path, max_page_bytes=1000)
    assert isinstance(bad, Malformed) and "truncated" in bad.detail


def test_an_html_file_over_the_size_limit_is_not_read(tmp_path):
    (tmp_path / "small.html").write_text(article("S", ENGLISH), encoding="utf-8")
    (tmp_path / "huge.html").write_text(article("H", ENGLISH * 100), encoding="utf-8")
    huge, small = read_documents(tmp_path, max_page_bytes=(tmp_path / "small.html").stat().st_size)
    assert huge.oversize and huge.payload == b"" and huge.bytes_in == (tmp_path / "huge.html").stat().st_size
    assert not small.oversize and small.payload == (tmp_path / "small.html").read_bytes()

"""From crawled pages to documents: each page kept with its metadata, or removed for a reason."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from warc_fixtures import ENGLISH_PARAGRAPHS, FRENCH, article, record, write_warc

from tasks.curation.config import CurationConfig
from tasks.curation.filter_pass import filter_shard
from tasks.curation.output_files import CurationPaths
from tasks.curation.reader import Document
from tasks.curation.web.config import WebConfig
from tasks.curation.web.extract import decode_html
from tasks.curation.web.front import PageRemoved, WebFront
from tasks.curation.web.pages import WebPage


def page(
    payload: bytes,
    url: str = "https://example.com/p",
    content_type: str | None = "text/html",
    charset: str | None = None,
    status: int | None = 200,
) -> WebPage:
    return WebPage(
        url=url,
        date="2024-05-06T07:08:09+00:00",
        content_type=content_type,
        charset=charset,
        record_id="<urn:uuid:1>",
        status=status,
        payload=payload,
        is_text=False,
        file="f.warc",
        offset=10,
        bytes_in=len(payload),
    )


@pytest.fixture(scope="module")
def front():
    return WebFront(WebConfig(url_filter={"blocked_domains": ["blocked.example"]}))


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_either_extractor_keeps_the_article_and_drops_the_rest(extractor):
    front = WebFront(WebConfig(extraction={"extractor": extractor}))
    doc = front(page(article("Town", ENGLISH_PARAGRAPHS).encode()))
    assert isinstance(doc, Document) and all(p in doc.text for p in ENGLISH_PARAGRAPHS)
    for boilerplate in ("Home", "About", "Copyright", "var x"):
        assert boilerplate not in doc.text
    empty = front(page(b"<html><head><style>p {}</style></head><body><script>x()</script></body></html>"))
    assert isinstance(empty, PageRemoved) and empty.reason == "no_main_text"


def test_a_kept_page_has_its_main_text_and_metadata(front):
    doc = front(page(article("Town", ENGLISH_PARAGRAPHS).encode()))
    assert isinstance(doc, Document)
    assert ENGLISH_PARAGRAPHS[1] in doc.text
    for boilerplate in ("Home", "About", "Copyright", "var x"):  # navigation, footer, script
        assert boilerplate not in doc.text
    meta = json.loads(doc.metadata)
    assert meta["url"] == "https://example.com/p" and meta["crawl_date"].startswith("2024-05-06")
    assert meta["warc_record_id"] == "<urn:uuid:1>" and meta["content_type"] == "text/html"
    assert meta["language"] == "en" and meta["language_score"] >= 0.65 and meta["charset"] == "utf-8"
    assert (doc.file, doc.line, doc.bytes_in) == ("f.warc", 10, len(article("Town", ENGLISH_PARAGRAPHS).encode()))


@pytest.mark.parametrize("declared_by", ["http", "meta"])
def test_a_non_utf8_page_is_decoded_by_its_declared_charset(front, declared_by):
    text = "Ĉu vi parolas? Жители города собираются на площади каждое утро."
    html = article("Город", [text, *ENGLISH_PARAGRAPHS], charset="windows-1251" if declared_by == "meta" else None)
    payload = html.replace("Ĉu vi parolas? ", "").encode("windows-1251")
    doc = front(page(payload, charset="windows-1251" if declared_by == "http" else None))
    assert isinstance(doc, Document)
    assert "Жители города собираются на площади каждое утро." in doc.text and "\ufffd" not in doc.text
    assert json.loads(doc.metadata)["charset"] == "cp1251"
    # Undeclared, the same bytes are not UTF-8: they decode with replacement characters, not an error.
    assert "\ufffd" in decode_html(payload.replace(b'<meta charset="windows-1251">', b""), None)[0]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"payload": b""}, "empty_page"),
        ({"payload": b"   \r\n"}, "empty_page"),
        ({"payload": b"%PDF-1.4 ...", "content_type": "application/pdf"}, "not_html"),
        (
            {"payload": b"<html><head><style>p {}</style></head><body><script>x()</script></body></html>"},
            "no_main_text",
        ),
        ({"payload": b"<html>moved</html>", "status": 301}, "http_status"),
        ({"payload": b"<html>x</html>", "url": "https://www.blocked.example/a"}, "url_blocked_domain"),
        ({"payload": b"<html>x</html>", "url": "https://example.com/free-porn/1"}, "url_blocked_word"),
    ],
)
def test_pages_without_usable_text_are_removed_for_a_reason(front, kwargs, reason):
    got = front(page(**kwargs))
    assert isinstance(got, PageRemoved) and got.reason == reason and got.detail


def test_a_page_over_the_size_limit_is_removed_loaded_or_not():
    front = WebFront(WebConfig(extraction={"max_page_bytes": 100}))
    loaded = front(page(article("Town", ENGLISH_PARAGRAPHS).encode()))
    skipped = page(b"")
    skipped.oversize, skipped.bytes_in = True, 5_000_000  # as the reader yields a page it streamed past
    for got, size in ((loaded, len(article("Town", ENGLISH_PARAGRAPHS).encode())), (front(skipped), 5_000_000)):
        assert isinstance(got, PageRemoved) and got.reason == "page_too_large" and f"{size} bytes" in got.detail


def test_url_words_match_whole_words_only(front):
    # "sussex" holds "sex", "expressway" holds no blocked word: RefinedWeb splits the URL into words.
    assert isinstance(
        front(page(article("Town", ENGLISH_PARAGRAPHS).encode(), url="https://sussex.example/sex-ed")), PageRemoved
    )
    assert isinstance(
        front(page(article("Town", ENGLISH_PARAGRAPHS).encode(), url="https://sussex.example/a")), Document
    )


def test_a_french_page_is_removed_by_language_and_kept_when_french_is(front):
    html = article("Moulin", [FRENCH, FRENCH.replace("rivière", "vallée")]).encode()
    got = front(page(html))
    assert isinstance(got, PageRemoved) and got.reason == "language" and "fr" in got.detail
    assert "moulin" in got.text  # the extracted text goes to removed/, not the HTML
    kept = WebFront(WebConfig(language={"keep": ["en", "fr"]}))(page(html))
    assert isinstance(kept, Document) and json.loads(kept.metadata)["language"] == "fr"


def test_a_warc_file_is_curated_with_every_record_accounted_for(tmp_path):
    good = [article(f"Town {i}", ENGLISH_PARAGRAPHS[i:] + ENGLISH_PARAGRAPHS[:i]).encode() for i in range(3)]
    huge = article("Huge", ENGLISH_PARAGRAPHS * 200).encode()
    recs = [
        record("warcinfo", None, b"software: test\r\n", content_type="application/warc-fields"),
        record("request", "https://example.com/0", b""),
        *[record("response", f"https://example.com/{i}", g) for i, g in enumerate(good)],
        record("response", "https://example.com/fr", article("Moulin", [FRENCH]).encode()),
        record("response", "https://example.com/empty", b""),
        record("response", "https://example.com/pdf", b"%PDF-1.4", content_type="application/pdf"),
        record("response", "https://casino.example/xxx", good[0]),
        record("response", "https://example.com/huge", huge),
        record("response", "https://example.com/cut", good[1]),
    ]
    path = write_warc(tmp_path / "crawl.warc.gz", recs)
    path.write_bytes(path.read_bytes()[:-40])  # the last record is cut short
    limit = 20_000
    assert len(huge) > limit > max(map(len, good))
    cfg = CurationConfig(
        decontamination={"enabled": False}, minhash={"enabled": False}, web={"extraction": {"max_page_bytes": limit}}
    )
    result = filter_shard(path, 0, cfg, tmp_path / "curated")
    stats = result["stats"]
    assert stats["docs_in"] == len(recs) and stats["docs_kept"] == 3
    assert result["languages"] == {"en": 3, "fr": 1}  # the pages that reached language ID
    assert {r: v["docs"] for r, v in stats["removed_by_reason"].items()} == {
        "not_a_page": 2,
        "language": 1,
        "empty_page": 1,
        "not_html": 1,
        "url_blocked_word": 1,
        "page_too_large": 1,
        "malformed": 1,
    }
    assert stats["removed_by_reason"]["page_too_large"]["bytes"] == len(huge)
    paths = CurationPaths(tmp_path / "curated")
    kept = pq.read_table(paths.filtered(0)).to_pylist()
    assert [json.loads(k["metadata"])["url"] for k in kept] == [f"https://example.com/{i}" for i in range(3)]
    removed = pq.read_table(paths.removed_filter(0)).to_pylist()
    assert len(removed) == stats["docs_in"] - 3
    by_reason = {r["reason"]: r for r in removed}
    assert by_reason["language"]["url"] == "https://example.com/fr"
    assert by_reason["url_blocked_word"]["url"] == "https://casino.example/xxx"
    assert by_reason["page_too_large"]["url"] == "https://example.com/huge"
    assert f"{len(huge)} bytes" in by_reason["page_too_large"]["detail"]
    assert by_reason["not_a_page"]["detail"] in ("warcinfo record", "request record")
    assert "https://example.com/cut" in by_reason["malformed"]["detail"] and by_reason["malformed"]["line"] > 0
    assert all(r["file"] == str(path) for r in removed)


def test_a_page_that_takes_too_long_to_extract_is_removed(monkeypatch):
    import time as _time

    front = WebFront(WebConfig(extraction={"timeout_s": 0.2}))
    monkeypatch.setattr(front.extract, "_extract", lambda html: _time.sleep(5) or "never")
    start = _time.perf_counter()
    got = front(page(article("Town", ENGLISH_PARAGRAPHS).encode()))
    assert isinstance(got, PageRemoved) and got.reason == "extraction_timeout"
    assert _time.perf_counter() - start < 2
    # The timer is gone afterwards: a later slow step is not interrupted.
    _time.sleep(0.3)

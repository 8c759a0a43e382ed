"""The web demo's crawl: every package page becomes a request and a response record, with the
URL it is published at, and the page's known language is recorded beside the WARC files."""

from __future__ import annotations

import json

from tasks.corpus import web_demo
from tasks.curation.reader import discover_inputs, read_documents
from tasks.curation.web.pages import SkippedRecord, WebPage


def fake_packages(root):
    """Each site's marker page plus one more page, as if its package were unpacked."""
    for site in web_demo.SITES:
        marker = root / site.source.path
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"<html><body><p>{site.source.package} index</p></body></html>")
        extra = marker.parent / ("extra." + site.glob.rsplit("*", 1)[-1].lstrip("."))
        extra.write_text(f"<html><body><p>{site.source.package} extra</p></body></html>")


def test_the_crawl_holds_every_page_once_with_its_url_and_language(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path))
    fake_packages(tmp_path / "debian-root")
    folder = web_demo.build_web_demo()
    pages = json.loads((folder / web_demo.PAGES_FILE).read_text())
    by_url = {p["url"]: p for p in pages}
    assert len(by_url) == len(pages)
    assert by_url["https://docs.python.org/3.11/index.html"]["language"] == "en"
    assert by_url["https://www.debian.org/doc/manuals/debian-reference/ch01.fr.html"]["language"] == "fr"
    assert by_url["https://www.debian.org/doc/manuals/debian-reference/ch01.es.html"]["language"] == "es"
    assert (
        by_url["https://www.debian.org/doc/manuals/developers-reference/de/best-pkging-practices.html"]["language"]
        == "de"
    )
    # Only the French pages of the shared debian-reference folder are French.
    assert {p["language"] for p in pages if ".fr." in p["url"]} == {"fr"}
    inputs, _ = discover_inputs(folder)
    assert inputs and all(f.name.endswith(".warc.gz") for f in inputs)  # pages.json is not an input
    items = [i for f in inputs for i in read_documents(f)]
    responses = [i for i in items if isinstance(i, WebPage)]
    assert sorted(p.url for p in responses) == sorted(by_url)
    assert sum(isinstance(i, SkippedRecord) and i.record_type == "request" for i in items) == len(pages)
    assert all(p.status == 200 and p.charset == "utf-8" and p.date.startswith("2024-06-01") for p in responses)
    summary = json.loads((folder / "_SUCCESS.json").read_text())
    assert summary["pages"] == len(pages) and summary["languages"]["fr"] == 4  # 2 sites x 2 pages
    assert summary["languages"]["es"] == 2  # the Debian Reference only: Debian has no Spanish Developer's Reference
    # Built once: a second call reuses the files.
    before = {f: f.stat().st_mtime_ns for f in inputs}
    web_demo.build_web_demo()
    assert {f: f.stat().st_mtime_ns for f in inputs} == before

"""End to end: `crucible curate` on WARC files and a folder of HTML pages, through a real
Prefect server and real Ray, every record accounted for and every removed one in removed/."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from infra.core.storage import RunDir, read_json
from tests.flows.e2e_env import curate
from tests.tasks.curation.web.warc_fixtures import ENGLISH_PARAGRAPHS, FRENCH, article, record, write_warc

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_crawl_is_curated_through_ray_with_every_record_accounted_for(e2e, tmp_path):
    crawl = tmp_path / "crawl"
    (crawl / "saved").mkdir(parents=True)
    pages = [article(f"Town {i}", ENGLISH_PARAGRAPHS[i:] + ENGLISH_PARAGRAPHS[:i]) for i in range(4)]
    write_warc(
        crawl / "a.warc.gz",
        [
            record("request", "https://example.com/0", b""),
            *[record("response", f"https://example.com/{i}", p.encode()) for i, p in enumerate(pages[:3])],
            record("response", "https://example.com/fr", article("Moulin", [FRENCH]).encode()),
        ],
    )
    cut = write_warc(
        crawl / "b.warc",
        [
            record("response", "https://adult.example/xxx", pages[3].encode()),
            record("response", "https://example.com/last", pages[3].encode()),
        ],
    )
    cut.write_bytes(cut.read_bytes()[:-30])
    (crawl / "saved" / "page.html").write_text(pages[3], encoding="utf-8")
    (crawl / "saved" / "empty.html").write_text("", encoding="utf-8")
    runs = tmp_path / "runs"
    result = curate(e2e, runs, "web", crawl)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = RunDir(runs / "web")
    total = read_json(run.curation_stats)["totals"]
    assert total["docs_in"] == 9  # 5 records + 2 records (one cut short) + 2 saved pages
    reasons = {r: v["docs"] for r, v in total["removed_by_reason"].items()}
    assert reasons == {"not_a_page": 1, "language": 1, "url_blocked_word": 1, "malformed": 1, "empty_page": 1}
    kept = [row for f in sorted(run.curated.glob("part-*.parquet")) for row in pq.read_table(f).to_pylist()]
    urls = sorted(json.loads(r["metadata"])["url"] for r in kept)
    assert len(kept) == total["docs_kept"] == 4  # three pages of a.warc.gz and saved/page.html
    assert urls[1:] == [f"https://example.com/{i}" for i in range(3)]
    assert urls[0].startswith("file://") and urls[0].endswith("/saved/page.html")
    removed = [row for f in sorted(run.removed.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    assert sorted(r["reason"] for r in removed) == sorted(reasons)
    assert {r["reason"]: r["url"] for r in removed if r["url"]}["url_blocked_word"] == "https://adult.example/xxx"
    assert "Languages identified in the pages (before the language filter): en 4, fr 1." in run.report.read_text()

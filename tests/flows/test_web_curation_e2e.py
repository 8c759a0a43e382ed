"""End to end: `crucible curate` on WARC files and a folder of HTML pages, through a real
Prefect server and real Ray, every record accounted for and every removed one in removed/."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from infra.core.storage import RunDir, read_json
from tests.flows.e2e_env import curate
from tests.tasks.curation.web.warc_fixtures import ENGLISH, ENGLISH_PARAGRAPHS, FRENCH, article, record, write_warc

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


def test_repeated_spans_and_damaged_copies_through_ray(e2e, tmp_path):
    """Exact-substring dedup and text repair in a real curate run: a footer repeated on every
    page stays on the first one only, a page that was mostly footer goes, and a copy of a page
    read with the wrong charset and with its entities left encoded is removed as a duplicate."""
    import html
    import random

    import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252: what browsers decode as)

    rnd = random.Random(7)
    words = ENGLISH.split()

    def page(n: int) -> str:  # real words, sampled so that no two pages share a long span
        return f"Café notes {n}. " + " ".join(rnd.sample(words, 60)) + "."

    footer = "\n\n" + " ".join(rnd.sample(words, 40)) + " Related articles and our licence notice follow here."
    pages = [page(n) + footer for n in range(4)]
    damaged = html.escape(pages[1].encode("utf-8").decode("sloppy-windows-1252"))
    mostly_footer = "A short note. " + footer
    docs = [*pages, damaged, mostly_footer]
    src = tmp_path / "in" / "docs.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs)))
    runs = tmp_path / "runs"
    result = curate(
        e2e, runs, "spans", src.parent,
        "--set", "curation.substring_dedup.enabled=true", "--set", "curation.substring_dedup.min_tokens=30",
        "--set", "curation.substring_dedup.min_tokens_left=20", "--set", "curation.repair_text=true",
        "--set", "curation.heuristics.c4.enabled=false", "--set", "curation.heuristics.fineweb.enabled=false",
        "--set", "curation.decontamination.enabled=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = RunDir(runs / "spans")
    stats = read_json(run.curation_stats)
    total = stats["totals"]
    reasons = {r: v["docs"] for r, v in total["removed_by_reason"].items()}
    assert reasons == {"exact_duplicate": 1, "substring_dedup": 1}
    assert total["docs_in"] == 6 == total["docs_kept"] + 2
    kept = {
        r["id"]: r["text"] for f in sorted(run.curated.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()
    }
    assert kept["d0"] == pages[0]  # the first occurrence keeps its footer
    assert [kept[f"d{i}"] for i in (1, 2, 3)] == [p.removesuffix(footer) for p in pages[1:]]
    changes = stats["steps"]["dedup_redact"]["changes"]
    assert changes["substring_dedup.spans"] == 3 and changes["substring_dedup.documents"] == 3
    assert stats["details"]["substring_dedup"]["groups"] == 1
    removed = {r["id"]: r for f in sorted(run.removed.glob("*.parquet")) for r in pq.read_table(f).to_pylist()}
    assert removed["d4"]["reason"] == "exact_duplicate" and removed["d4"]["detail"] == "duplicate of d1"
    assert removed["d5"]["reason"] == "substring_dedup"

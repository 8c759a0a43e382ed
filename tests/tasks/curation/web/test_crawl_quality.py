"""The quality classifier on a crawl: a named reference corpus against pages drawn from the crawl."""

from __future__ import annotations

import random

import pytest
from warc_fixtures import ENGLISH_PARAGRAPHS, article, record, write_warc

from tasks.curation.config import CurationConfig
from tasks.curation.output_files import CurationPaths
from tasks.curation.reader import InputError
from tasks.curation.training_sets import sample_documents, train_quality

SALAD = [
    "click",
    "here",
    "buy",
    "now",
    "best",
    "price",
    "free",
    "shipping",
    "limited",
    "offer",
    "deal",
    "discount",
    "sale",
    "cheap",
    "top",
    "rated",
    "order",
    "today",
    "win",
    "prize",
    "casino",
    "bonus",
    "subscribe",
    "login",
    "account",
    "cart",
]


def salad(rnd: random.Random) -> list[str]:
    return [" ".join(rnd.choice(SALAD) for _ in range(40)) + "." for _ in range(3)]


@pytest.fixture
def crawl_and_reference(tmp_path):
    rnd = random.Random(0)
    recs = [
        record("response", f"https://shop{i}.example/p", article(f"Deal {i}", salad(rnd)).encode()) for i in range(40)
    ]
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    write_warc(crawl / "c.warc.gz", recs)
    ref = tmp_path / "reference"
    ref.mkdir()
    for i in range(40):
        paras = ENGLISH_PARAGRAPHS[:]
        rnd.shuffle(paras)
        (ref / f"page{i:02d}.html").write_text(article(f"Town {i}", paras), encoding="utf-8")
    return crawl, ref


def test_a_crawl_needs_a_reference_corpus(crawl_and_reference, tmp_path):
    crawl, _ = crawl_and_reference
    cfg = CurationConfig(quality_classifier={"enabled": True})
    with pytest.raises(InputError, match="hq_path to curated reference text"):
        train_quality(crawl, cfg, CurationPaths(tmp_path / "cur"))


def test_reference_text_against_random_crawl_pages(crawl_and_reference, tmp_path):
    crawl, ref = crawl_and_reference
    cfg = CurationConfig(quality_classifier={"enabled": True, "hq_path": str(ref), "threads": 1})
    out = train_quality(crawl, cfg, CurationPaths(tmp_path / "cur"), model_path=tmp_path / "m.bin")
    assert out["lq_source"] == "random crawl pages" and out["hq_source"] == str(ref)
    m = out["metrics"]
    assert m["n_given"] == {"hq": 40, "lq": 40}  # the pages' extracted text, both sides
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["lq_kept_share"] == 0.0


def test_crawl_pages_are_drawn_from_the_whole_input(tmp_path):
    recs = [
        record("response", f"https://example.com/{i}", article(f"Page {i}", ENGLISH_PARAGRAPHS).encode())
        for i in range(60)
    ]
    write_warc(tmp_path / "a.warc.gz", recs[:30])
    write_warc(tmp_path / "b.warc.gz", recs[30:])
    cfg = CurationConfig(web={"language": {"enabled": False}})
    texts = sample_documents(tmp_path, cfg, 10, seed=1)
    titles = {t.split("\n", 1)[0] for t in texts}
    assert len(texts) == 10
    # Pages from the second file are drawn too, not only the first ten of the first.
    assert any(int(t.split()[-1]) >= 30 for t in titles if t.startswith("Page "))

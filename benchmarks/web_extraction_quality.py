"""How good each main-text extractor's text is, against each page's own main-content markup.

The pages (the web benchmark's crawl, tasks/corpus/web_demo.py) come from documentation
generators that mark their main content, which gives a ground truth for each page without
anyone labelling it:
- Sphinx (Python docs, the Developer's Reference): the element with role="main";
- DocBook (Debian Reference, PostgreSQL, the Debian Handbook) and AsciiDoc (Git): the body
  without its navigation header and footer, banner, tables of contents and sidebars.
Scripts and styles are dropped from both. Pages whose main content has fewer than
--min-words words (indexes, redirects) are left out.

For each extractor setting, on the same pages, in one run:
- precision and recall of its words against the ground truth's, as bags of words (a word
  counted as often as it occurs), per page and summed, per site;
- boilerplate: the share of its text in lines that recur on at least half of a site's pages
  (navigation and footers that an extractor let through);
- its speed on this machine, one process.

Usage: .venv/bin/python benchmarks/web_extraction_quality.py [--out results/web_extraction_quality.json]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from web_curation import our_pages  # benchmarks/ is on sys.path when run as a script

from tasks.corpus.demo import cache_dir
from tasks.corpus.web_demo import BENCHMARK_SITES, WEB_DEMO_VERSION, build_web_demo
from tasks.curation.web.config import ExtractionConfig
from tasks.curation.web.extract import Extractor, decode_html

SETTINGS = {
    "resiliparse": ExtractionConfig(extractor="resiliparse", timeout_s=0),
    "trafilatura_precision": ExtractionConfig(extractor="trafilatura", favor_precision=True, timeout_s=0),
    "trafilatura_default": ExtractionConfig(extractor="trafilatura", favor_precision=False, timeout_s=0),
}

# Navigation that DocBook, Publican and AsciiDoc put around a page's content, by class or id.
_NAVIGATION = frozenset(
    (
        "navheader",
        "navfooter",
        "docnav",
        "banner",
        "footer",
        "toc",
        "sphinxsidebar",
        "related",
        "navigation",
        "header-links",
    )
)
_WORD = re.compile(r"\w+")


def ground_truth(html: str) -> str:
    from lxml import html as lxml_html

    # lxml refuses text that still declares an encoding (<?xml ... encoding=...?>); the text is decoded.
    root = lxml_html.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", html))
    for bad in root.xpath("//script|//style|//noscript"):
        bad.drop_tree()
    main = root.xpath("//*[@role='main']")
    if main:
        return main[0].text_content()
    body = root.find("body")
    body = body if body is not None else root
    for el in list(body.iter()):
        names = set((el.get("class") or "").split()) | {el.get("id") or ""}
        if names & _NAVIGATION and el.getparent() is not None:
            el.drop_tree()
    return body.text_content()


def words(text: str) -> Counter:
    return Counter(w.lower() for w in _WORD.findall(text))


def load_pages(files: list[Path], min_words: int) -> list[tuple[str, str, Counter]]:
    pages = []
    for page in our_pages(files):
        html = decode_html(page.payload, page.charset)[0]
        truth = words(ground_truth(html))
        if sum(truth.values()) >= min_words:
            pages.append((page.url, html, truth))
    return pages


def boilerplate_share(texts_by_site: dict[str, list[str]]) -> float:
    """Characters in lines that recur on at least half of their site's pages, over all characters."""
    repeated = total = 0
    for texts in texts_by_site.values():
        line_pages = Counter(line for t in texts for line in {x.strip() for x in t.splitlines() if x.strip()})
        common = {line for line, n in line_pages.items() if n >= max(len(texts) / 2, 2)}
        for t in texts:
            for line in t.splitlines():
                total += len(line.strip())
                repeated += len(line.strip()) if line.strip() in common else 0
    return repeated / max(total, 1)


def score(name: str, cfg: ExtractionConfig, pages: list[tuple[str, str, Counter]]) -> dict:
    extract = Extractor(cfg)
    per_site: dict[str, Counter] = defaultdict(Counter)
    texts_by_site: dict[str, list[str]] = defaultdict(list)
    f1s = []
    start = time.perf_counter()
    texts = [extract(html) for _, html, _ in pages]
    seconds = time.perf_counter() - start
    for (url, _, truth), text in zip(pages, texts):
        site = url.split("/")[2]
        got = words(text)
        hit, n_got, n_truth = sum((got & truth).values()), sum(got.values()), sum(truth.values())
        c = per_site[site]
        c["pages"] += 1
        c["hit"] += hit
        c["got"] += n_got
        c["truth"] += n_truth
        c["empty"] += not text.strip()
        p, r = hit / max(n_got, 1), hit / n_truth
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        texts_by_site[site].append(text)
    total = sum(per_site.values(), Counter())
    f1s.sort()

    def pr(c: Counter) -> dict:
        return {
            "pages": c["pages"],
            "precision": c["hit"] / max(c["got"], 1),
            "recall": c["hit"] / max(c["truth"], 1),
            "empty_pages": c["empty"],
        }

    return {
        "setting": name,
        "seconds": seconds,
        "pages_per_s": len(pages) / seconds,
        **pr(total),
        "mean_page_f1": sum(f1s) / len(f1s),
        "median_page_f1": f1s[len(f1s) // 2],
        "pages_f1_below_0.8": sum(f < 0.8 for f in f1s),
        "boilerplate_share": boilerplate_share(texts_by_site),
        "sites": {s: pr(c) for s, c in sorted(per_site.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-words", type=int, default=50)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    folder = build_web_demo(cache_dir() / f"web-benchmark-{WEB_DEMO_VERSION}", BENCHMARK_SITES)
    pages = load_pages(sorted(folder.glob("*.warc.gz")), args.min_words)
    print(f"{len(pages)} pages with at least {args.min_words} words of main content")
    results = [score(name, SETTINGS[name], pages) for name in args.settings.split(",")]
    for r in results:
        print(
            f"{r['setting']:<22} precision {r['precision']:.3f}  recall {r['recall']:.3f}  mean page F1 "
            f"{r['mean_page_f1']:.3f} (median {r['median_page_f1']:.3f}, {r['pages_f1_below_0.8']} pages under 0.8)  "
            f"boilerplate {r['boilerplate_share']:.4f}  empty {r['empty_pages']}  {r['pages_per_s']:.1f} pages/s"
        )
        for site, s in r["sites"].items():
            print(
                f"    {site:<22} {s['pages']:5d} pages  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
                f"empty {s['empty_pages']}"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"pages": len(pages), "min_words": args.min_words, "results": results}, indent=2)
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

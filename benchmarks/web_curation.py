"""The web front end against datatrove and against its own parts, in one run.

Input: WARC files of real HTML pages built from Debian packages (tasks/corpus/web_demo.py):
the web demo's pages (Python docs; Debian's manuals in English, French, German) plus, by
default, PostgreSQL's and Git's manuals, past 100 MB of HTML.

1. Throughput, one process each, language step off on both sides (datatrove's
   LanguageFilter downloads its model): ours reads with FastWARC and runs the URL filter and
   the extractor (`read_documents` + `WebFront`), with its default extractor (Resiliparse)
   and with trafilatura; datatrove runs WarcReader (warcio) + Trafilatura(favour_precision=True,
   deduplicate=False, our trafilatura setting) under LocalPipelineExecutor. Reported per
   core: pages/s and MB/s of HTML read, and the ratios (goal >= 2x); then how far
   Resiliparse's text is from trafilatura's. (benchmarks/web_extraction_quality.py scores
   both against each page's main-content markup.)
2. Extraction agreement, for each extractor: our text against the extractor called directly
   on the same page's bytes, decoded its own way (trafilatura: UTF-8 as datatrove does;
   Resiliparse: its own encoding detection), with the same settings.
3. Language-ID accuracy on the pages whose language their package gives: per language, the
   share identified as it, and the share kept/removed at the configured threshold.

Needs the `bench` extra (datatrove[io,processing]).
Usage: .venv/bin/python benchmarks/web_curation.py [--demo-only] [--out results/web_curation.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from tasks.corpus.demo import cache_dir
from tasks.corpus.web_demo import BENCHMARK_SITES, PAGES_FILE, SITES, WEB_DEMO_VERSION, build_web_demo
from tasks.curation.reader import Document, read_documents
from tasks.curation.web.config import ExtractionConfig, WebConfig
from tasks.curation.web.extract import Extractor, decode_html
from tasks.curation.web.front import WebFront
from tasks.curation.web.language import LanguageId
from tasks.curation.web.pages import WebPage


def our_pages(files: list[Path]):
    for f in files:
        for item in read_documents(f):
            if isinstance(item, WebPage):
                yield item


def time_ours(files: list[Path], extractor: str) -> dict:
    front = WebFront(WebConfig(language={"enabled": False}, extraction=ExtractionConfig(extractor=extractor)))
    start = time.perf_counter()
    pages = html = kept = 0
    for page in our_pages(files):
        pages += 1
        html += page.bytes_in
        kept += isinstance(front(page), Document)
    return {"seconds": time.perf_counter() - start, "pages": pages, "html_bytes": html, "docs": kept}


def time_datatrove(folder: Path, work: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    counted = {"docs": 0}

    def count(data, rank: int = 0, world_size: int = 1):
        for _ in data:
            counted["docs"] += 1
        return iter(())

    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReader(str(folder), glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True, deduplicate=False),
            count,
        ],
        tasks=1,
        workers=1,
        logging_dir=str(work / "dt-logs"),
    )
    start = time.perf_counter()
    executor.run()
    return {"seconds": time.perf_counter() - start, "docs": counted["docs"]}


def direct_trafilatura(payload: bytes) -> str | None:
    from trafilatura import extract

    try:
        html = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return extract(html, favor_precision=True, include_comments=False, deduplicate=False) or ""


def direct_resiliparse(payload: bytes) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import detect_encoding
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse_from_bytes(payload, detect_encoding(payload))
    return extract_plain_text(
        tree, main_content=True, alt_texts=False, links=False, noscript=False, list_bullets=True
    ).strip()


def agreement(files: list[Path], limit: int, extractor: str) -> dict:
    """Our extraction (the page decoded by its declared charset) against the extractor called
    directly on the page's bytes, decoded its own way, with the same settings."""
    direct = {"trafilatura": direct_trafilatura, "resiliparse": direct_resiliparse}[extractor]
    ours = Extractor(ExtractionConfig(extractor=extractor))
    same = differ = 0
    examples = []
    for page in our_pages(files):
        if same + differ >= limit:
            break
        if (theirs := direct(page.payload)) is None:
            continue
        mine = ours(decode_html(page.payload, page.charset)[0])
        if mine == theirs:
            same += 1
        else:
            differ += 1
            if len(examples) < 5:
                examples.append({"url": page.url, "ours_chars": len(mine), "trafilatura_chars": len(theirs)})
    return {"pages": same + differ, "identical": same, "different": differ, "examples": examples}


def extractors_overlap(files: list[Path], limit: int) -> dict:
    """How far Resiliparse's text is from trafilatura's on the same pages: the Jaccard of
    their word sets, and their lengths."""
    traf = Extractor(ExtractionConfig(extractor="trafilatura"))
    resi = Extractor(ExtractionConfig(extractor="resiliparse"))
    sims, lengths = [], {"trafilatura": 0, "resiliparse": 0}
    for page in our_pages(files):
        if len(sims) >= limit:
            break
        html = decode_html(page.payload, page.charset)[0]
        a, b = traf(html), resi(html)
        lengths["trafilatura"] += len(a)
        lengths["resiliparse"] += len(b)
        wa, wb = set(a.split()), set(b.split())
        sims.append(len(wa & wb) / max(len(wa | wb), 1))
    sims.sort()
    return {
        "pages": len(sims),
        "mean_word_jaccard": sum(sims) / max(len(sims), 1),
        "median_word_jaccard": sims[len(sims) // 2] if sims else 0.0,
        "chars": lengths,
    }


# English function words: a page whose text is mostly these is mostly English, whatever its
# package says (translations of a manual leave chapters untranslated).
ENGLISH_WORDS = frozenset(
    [
        "the",
        "and",
        "of",
        "to",
        "in",
        "is",
        "that",
        "for",
        "it",
        "with",
        "as",
        "are",
        "be",
        "this",
        "by",
        "an",
        "or",
        "which",
        "from",
        "at",
        "can",
        "not",
        "you",
        "your",
        "will",
        "have",
        "has",
        "if",
        "all",
    ]
)


def english_share(text: str) -> float:
    words = text.lower().split()
    return sum(w in ENGLISH_WORDS for w in words) / max(len(words), 1)


SHORT_WORDS = 20  # under this many words, a language is a guess (an index page's title, say)


def language_accuracy(files: list[Path], known: dict[str, str], threshold: float) -> dict:
    extract = Extractor(WebConfig().extraction)
    ident = LanguageId(WebConfig().language)
    by_lang: dict[str, Counter] = defaultdict(Counter)
    for page in our_pages(files):
        lang = known.get(page.url)
        if lang is None:
            continue
        text = extract(decode_html(page.payload, page.charset)[0])
        if not text.strip():
            by_lang[lang]["no_text"] += 1
            continue
        got, prob = ident.identify(text)
        c = by_lang[lang]
        c["pages"] += 1
        c["correct"] += got == lang
        c["confident"] += got == lang and prob >= threshold
        c[f"as_{got}"] += got != lang
        # Pages of a translation whose text is still mostly English (over 20% English function
        # words; translated text has under 5%): the package's label is wrong there, not the model.
        untranslated = lang != "en" and english_share(text) > 0.2
        c["untranslated"] += untranslated
        c["correct_translated"] += got == lang and not untranslated
        short = len(text.split()) < SHORT_WORDS
        c["short"] += short
        c["correct_long"] += got == lang and not short
    return {
        lang: {
            "pages": c["pages"],
            "accuracy": c["correct"] / max(c["pages"], 1),
            "mostly_english_pages": c["untranslated"],
            "accuracy_on_translated": c["correct_translated"] / max(c["pages"] - c["untranslated"], 1),
            "short_pages": c["short"],
            "accuracy_on_longer": c["correct_long"] / max(c["pages"] - c["short"], 1),
            "identified_at_threshold": c["confident"] / max(c["pages"], 1),
            "no_text": c["no_text"],
            "confusions": {k[3:]: v for k, v in c.items() if k.startswith("as_")},
        }
        for lang, c in sorted(by_lang.items())
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-only", action="store_true", help="only the web demo's pages (62 MB of HTML)")
    ap.add_argument("--agreement-pages", type=int, default=300)
    ap.add_argument(
        "--parts",
        default="throughput,agreement,language",
        help="which measurements (comma-separated); --out keeps the other parts already in the file",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.demo_only:
        folder = build_web_demo()
    else:
        folder = build_web_demo(cache_dir() / f"web-benchmark-{WEB_DEMO_VERSION}", BENCHMARK_SITES)
    files = sorted(folder.glob("*.warc.gz"))
    known = {p["url"]: p["language"] for p in json.loads((folder / PAGES_FILE).read_text())}
    parts = set(args.parts.split(","))
    result = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    if "throughput" in parts:
        result.update(throughput(files, folder, args))
        result["extractors"] = extractors_overlap(files, args.agreement_pages)
    if "agreement" in parts:
        result["agreement"] = {x: agreement(files, args.agreement_pages, x) for x in ("resiliparse", "trafilatura")}
    if "language" in parts:
        result["language"] = language_accuracy(files, known, WebConfig().language.threshold)
    report(result, parts)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


def throughput(files: list[Path], folder: Path, args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="web-bench-"))
    ours = time_ours(files, WebConfig().extraction.extractor)
    traf = time_ours(files, "trafilatura")
    theirs = time_datatrove(folder, work)
    html_mb = ours["html_bytes"] / 1e6

    def rates(side: dict) -> dict:
        return {**side, "pages_per_s": ours["pages"] / side["seconds"], "html_mb_per_s": html_mb / side["seconds"]}

    return {
        "input": {
            "folder": str(folder),
            "files": len(files),
            "pages": ours["pages"],
            "html_mb": round(html_mb, 1),
            "warc_gz_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
            "sites": [s.source.package for s in (SITES if args.demo_only else BENCHMARK_SITES)],
        },
        "throughput": {
            "ours": rates(ours),
            "ours_trafilatura": rates(traf),
            "datatrove": rates(theirs),
            "default_extractor": WebConfig().extraction.extractor,
            "ratio": theirs["seconds"] / ours["seconds"],
            "ratio_trafilatura": theirs["seconds"] / traf["seconds"],
        },
    }


def report(result: dict, parts: set[str]) -> None:
    if "throughput" in parts:
        t, i = result["throughput"], result["input"]
        print(
            f"input: {i['pages']} pages, {i['html_mb']} MB of HTML in {i['files']} WARC.gz files ({i['warc_gz_mb']} MB)"
        )
        for side in ("ours", "ours_trafilatura", "datatrove"):
            s = t[side]
            print(
                f"  {side:<17} {s['seconds']:7.1f} s  {s['pages_per_s']:6.1f} pages/s  {s['html_mb_per_s']:5.2f} "
                f"MB/s per core  documents out {s['docs']}"
            )
        print(
            f"  ours ({t['default_extractor']}, the default) / datatrove (trafilatura): {t['ratio']:.2f}x "
            f"(goal >= 2x); both trafilatura: {t['ratio_trafilatura']:.2f}x"
        )
        x = result["extractors"]
        print(
            f"resiliparse vs trafilatura on {x['pages']} pages: mean word-set Jaccard {x['mean_word_jaccard']:.3f} "
            f"(median {x['median_word_jaccard']:.3f}), characters {x['chars']}"
        )
    if "agreement" in parts:
        for x, a in result["agreement"].items():
            print(f"extraction, {x}: {a['identical']} of {a['pages']} pages identical to {x} called directly")
    if "language" in parts:
        for lang, r in result["language"].items():
            print(
                f"language {lang}: {r['pages']} pages, accuracy {r['accuracy']:.3f}, identified at >= threshold "
                f"{r['identified_at_threshold']:.3f}, confusions {r['confusions']}; {r['mostly_english_pages']} "
                f"pages mostly English text, accuracy on the rest {r['accuracy_on_translated']:.3f}; "
                f"{r['short_pages']} pages under {SHORT_WORDS} words, "
                f"accuracy on the rest {r['accuracy_on_longer']:.3f}"
            )


if __name__ == "__main__":
    main()

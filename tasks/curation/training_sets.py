"""The inputs some curation steps build before filtering: planted noise, the fastText
quality model's training sets, and the benchmark n-gram index for decontamination."""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.core.storage import atomic_path
from tasks.corpus.web_demo import REFERENCE_NAME, reference_pages
from tasks.curation.config import CurationConfig
from tasks.curation.decontam import benchmark_ngram_hashes, save_index
from tasks.curation.noise import inject_noise, spam_documents
from tasks.curation.output_files import CurationPaths
from tasks.curation.quality_model import train_quality_model
from tasks.curation.reader import INPUT_SUFFIXES, Document, InputError, discover_inputs, is_web_input, read_documents
from tasks.curation.web.pages import WebPage

if TYPE_CHECKING:
    from tasks.curation.web.front import WebFront

log = logging.getLogger(__name__)


def iter_documents(source: Path, cfg: CurationConfig) -> Iterator[Document]:
    """Readable documents under `source` in file order, web pages as the web front end turns
    them into documents (what it removes, and malformed records, are skipped here: these are
    training sets, the filter pass counts them)."""
    files, _ = discover_inputs(source)
    front: WebFront | None = None
    for f in files:
        if is_web_input(f) and front is None:
            from tasks.curation.web.front import WebFront  # loads the extractor and language model

            front = WebFront(cfg.web)
        for item in read_documents(
            f, cfg.text_field, cfg.id_field, cfg.web.extraction.max_page_bytes, cfg.max_record_bytes
        ):
            if isinstance(item, WebPage):
                assert front is not None  # made above, before the first web input's records
                doc = front(item)
            else:
                doc = item
            if isinstance(doc, Document):
                yield doc


def build_noisy_input(source: Path, cfg: CurationConfig, paths: CurationPaths) -> dict[str, Any]:
    """The stage input with labelled noise added: the original files, linked unchanged (so
    malformed records still reach the filter pass and are counted), then the planted
    documents in files that sort after them (so keep-first dedup keeps the originals).
    Holds the readable input in memory: meant for the demo and benchmarks, not a crawl."""
    assert cfg.noise is not None
    files, _ = discover_inputs(source)
    if any(is_web_input(f) for f in files):
        raise InputError(
            f"curation.noise plants labelled documents beside JSONL/Parquet input, but {source} "
            f"holds WARC or HTML input; set curation.noise to null"
        )
    docs = [{"id": d.id, "text": d.text, "source": d.source} for d in iter_documents(source, cfg)]
    noisy, labels = inject_noise(docs, cfg.noise)
    out = paths.noise_input
    if out.exists():
        shutil.rmtree(out)  # a retry starts clean
    out.mkdir(parents=True)
    for i, f in enumerate(files):
        suffix = next(s for s in INPUT_SUFFIXES if f.name.endswith(s))
        (out / f"input-{i:05d}{suffix}").symlink_to(f.resolve())
    planted = [d for d, lab in zip(noisy, labels) if lab["kind"] != "original"]
    with atomic_path(out / "noise-00000.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in planted), encoding="utf-8")
    with atomic_path(paths.noise_labels) as tmp:
        tmp.write_text("".join(json.dumps(lab, ensure_ascii=False) + "\n" for lab in labels), encoding="utf-8")
    counts = dict(Counter(lab["kind"] for lab in labels))
    log.info("planted noise next to %d documents: %s", len(docs), counts)
    return {"input": str(out), "counts": counts, "labels": str(paths.noise_labels)}


def _texts(path: str, cfg: CurationConfig, limit: int) -> list[str]:
    return [d.text for d in islice(iter_documents(Path(path), cfg), limit)]


def sample_documents(source: Path, cfg: CurationConfig, n: int, seed: int) -> list[str]:
    """Texts of `n` records drawn uniformly from the whole input (reservoir sampling), web
    pages extracted only once drawn: a crawl's random pages, not its first files' pages."""
    files, _ = discover_inputs(source)
    rnd, seen = random.Random(seed), 0
    reservoir: list[Document | WebPage] = []
    for f in files:
        for item in read_documents(
            f, cfg.text_field, cfg.id_field, cfg.web.extraction.max_page_bytes, cfg.max_record_bytes
        ):
            if not isinstance(item, (Document, WebPage)):
                continue
            seen += 1
            if len(reservoir) < n:
                reservoir.append(item)
            elif (j := rnd.randrange(seen)) < n:
                reservoir[j] = item
    docs: list[object] = list(reservoir)
    if any(isinstance(i, WebPage) for i in reservoir):
        from tasks.curation.web.front import WebFront

        front = WebFront(cfg.web)
        docs = [front(i) if isinstance(i, WebPage) else i for i in reservoir]
    return [d.text for d in docs if isinstance(d, Document)]


def train_quality(
    source: Path, cfg: CurationConfig, paths: CurationPaths, model_path: Path | None = None
) -> dict[str, Any]:
    """Train the fastText classifier. For a crawl (WARC/HTML input), hq_path names the
    reference corpus and, without lq_path, pages drawn at random from the crawl are the
    low-quality class (GPT-3, DCLM). Otherwise, without hq_path a sample of the input is
    the high-quality set, and without lq_path spam made from it by the noise injector."""
    qc = cfg.quality_classifier
    files, _ = discover_inputs(source)
    crawl = any(is_web_input(f) for f in files)
    if crawl and not qc.hq_path:
        raise InputError(
            f"{source} is a crawl: its own pages cannot be the quality classifier's good class. Set "
            f"curation.quality_classifier.hq_path to curated reference text (JSONL/Parquet/HTML), or "
            f"turn the classifier off"
        )
    hq_path = qc.hq_path
    if hq_path == REFERENCE_NAME:
        hq_path = str(reference_pages())
    hq = _texts(hq_path or str(source), cfg, qc.max_docs_per_class)
    if qc.lq_path:
        lq, lq_source = _texts(qc.lq_path, cfg, qc.max_docs_per_class), qc.lq_path
    elif crawl:
        lq, lq_source = sample_documents(source, cfg, qc.max_docs_per_class, qc.seed), "random crawl pages"
    else:
        lq = [text for text, _style in spam_documents(hq, len(hq), random.Random(qc.seed))]
        lq_source = "noise injector spam"
    model_path = model_path or paths.quality_model
    metrics = train_quality_model(hq, lq, model_path, qc)
    log.info(
        "quality classifier: held-out precision %.3f, recall %.3f, keeps %.1f%% of held-out %s",
        metrics["precision"],
        metrics["recall"],
        100 * metrics["lq_kept_share"],
        lq_source,
    )
    return {
        "model": str(model_path),
        "metrics": metrics,
        "hq_source": qc.hq_path or "input sample",
        "lq_source": lq_source,
    }


def build_decontam_index(cfg: CurationConfig, paths: CurationPaths) -> dict[str, Any]:
    dc = cfg.decontamination
    present = [Path(p) for p in dc.benchmark_paths if Path(p).exists()]
    missing = [p for p in dc.benchmark_paths if not Path(p).exists()]
    if missing:
        log.warning("decontamination: %d benchmark file(s) not found, skipped: %s", len(missing), missing)
    if not present:
        return {"index": None, "benchmarks": {}, "missing": missing}
    hashes = benchmark_ngram_hashes(present, dc.ngram)
    save_index(hashes, paths.decontam_index, n=dc.ngram)
    return {
        "index": str(paths.decontam_index),
        "benchmarks": {k: len(v) for k, v in hashes.items()},
        "missing": missing,
    }

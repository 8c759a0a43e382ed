"""The inputs some curation steps build before filtering: planted noise, the fastText
quality model's training sets, and the benchmark n-gram index for decontamination."""
from __future__ import annotations

import json
import logging
import random
import shutil
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from infra.core.storage import atomic_path
from tasks.curation.config import CurationConfig
from tasks.curation.decontam import benchmark_ngram_hashes, save_index
from tasks.curation.layout import CurationPaths
from tasks.curation.noise import inject_noise, spam_documents
from tasks.curation.quality_model import train_quality_model
from tasks.curation.reader import (INPUT_SUFFIXES, Document, InputError, discover_inputs, is_web_input,
                                   read_documents)
from tasks.curation.web.pages import WebPage

log = logging.getLogger(__name__)


def iter_documents(source: Path, cfg: CurationConfig) -> Iterator[Document]:
    """Readable documents under `source` in file order, web pages as the web front end turns
    them into documents (what it removes, and malformed records, are skipped here: these are
    training sets, the filter pass counts them)."""
    files, _ = discover_inputs(source)
    front = None
    for f in files:
        if is_web_input(f) and front is None:
            from tasks.curation.web.front import WebFront  # loads the extractor and language model

            front = WebFront(cfg.web)
        for item in read_documents(f, cfg.text_field, cfg.id_field):
            if isinstance(item, WebPage):
                item = front(item)
            if isinstance(item, Document):
                yield item


def build_noisy_input(source: Path, cfg: CurationConfig, paths: CurationPaths) -> dict[str, Any]:
    """The stage input with labelled noise added: the original files, linked unchanged (so
    malformed records still reach the filter pass and are counted), then the planted
    documents in files that sort after them (so keep-first dedup keeps the originals).
    Holds the readable input in memory: meant for the demo and benchmarks, not a crawl."""
    assert cfg.noise is not None
    files, _ = discover_inputs(source)
    if any(is_web_input(f) for f in files):
        raise InputError(f"curation.noise plants labelled documents beside JSONL/Parquet input, but {source} "
                         f"holds WARC or HTML input; set curation.noise to null")
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


def train_quality(source: Path, cfg: CurationConfig, paths: CurationPaths,
                  model_path: Path | None = None) -> dict[str, Any]:
    """Train the fastText classifier. Without hq_path, a sample of the input is the
    high-quality set; without lq_path, spam made from that sample by the noise injector."""
    qc = cfg.quality_classifier
    hq = _texts(qc.hq_path or str(source), cfg, qc.max_docs_per_class)
    if qc.lq_path:
        lq = _texts(qc.lq_path, cfg, qc.max_docs_per_class)
    else:
        lq = [text for text, _style in spam_documents(hq, len(hq), random.Random(qc.seed))]
    model_path = model_path or paths.quality_model
    metrics = train_quality_model(hq, lq, model_path, qc)
    log.info("quality classifier: held-out precision %.3f, recall %.3f", metrics["precision"], metrics["recall"])
    return {"model": str(model_path), "metrics": metrics,
            "hq_source": qc.hq_path or "input sample", "lq_source": qc.lq_path or "noise injector spam"}


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
    return {"index": str(paths.decontam_index), "benchmarks": {k: len(v) for k, v in hashes.items()},
            "missing": missing}

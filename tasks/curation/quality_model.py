"""The fastText document quality classifier: trained on a high-quality reference set
against low-quality documents, it scores each document with P(high quality).

The same idea as GPT-3's and DCLM's classifiers: a cheap linear model over word n-grams,
fast enough to score every document of a crawl on CPU.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from infra.core.storage import atomic_path, named_if_disk_full, write_json

HQ, LQ = "__label__hq", "__label__lq"
MIN_DOCS_PER_CLASS = 20
# Long documents are judged on their opening: a few thousand words are enough to tell prose
# from spam, and both the training file and the scoring time per document stay bounded
# however long a document is (fastText's supervised mode itself has no line limit).
MAX_CHARS = 20_000
# fastText splits words on ASCII whitespace and NUL; collapsing all of them (and Unicode
# spaces) into one space keeps a document on one line, which is one example to fastText.
_SPACE = re.compile(r"[\s\x00]+")


class QualityClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False, description="Train (or load) the classifier and remove documents scored below threshold."
    )
    model_path: str | None = Field(None, description="An existing fastText .bin to use instead of training.")
    hq_path: str | None = Field(
        None,
        description="High-quality reference documents (JSONL/Parquet, or "
        "HTML/WARC); default: a sample of the input. Required for a crawl: curated text "
        "you trust (GPT-3 and DCLM's recipe); 'web-demo-reference' is the web demo's (Debian's Administrator's "
        "Handbook, English HTML).",
    )
    lq_path: str | None = Field(
        None,
        description="Low-quality documents; default: for a crawl, pages drawn "
        "at random from it; otherwise spam made by the noise injector from the "
        "high-quality sample.",
    )
    threshold: float = Field(0.5, ge=0, le=1, description="Keep documents with P(high quality) >= this.")
    holdout_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of each class held out to measure the classifier."
    )
    max_docs_per_class: int = Field(20_000, ge=MIN_DOCS_PER_CLASS, description="Most training documents per class.")
    epoch: int = Field(5, ge=1, description="fastText training epochs.")
    lr: float = Field(0.5, gt=0, description="fastText learning rate.")
    dim: int = Field(32, ge=2, description="fastText word-vector size.")
    # word_ngrams=1 diverged ("Encountered NaN") in about half of fresh trainings with the
    # fasttext-numpy2-wheel build, on data that trains cleanly with 2; bigrams are also what
    # tells word salad from prose.
    word_ngrams: int = Field(2, ge=2, description="fastText's longest word n-gram (2: bigrams).")
    min_count: int = Field(2, ge=1, description="fastText: words seen fewer times are ignored.")
    bucket: int = Field(
        200_000, ge=1000, description="Hash buckets for word n-grams: the model's size (bucket x dim x 4 bytes)."
    )
    seed: int = Field(0, description="Seed of the training sample, its shuffle and fastText.")
    # fastText on small data with several threads can diverge ("Encountered NaN"), STACK.md.
    threads: int = Field(1, ge=1, description="fastText training threads (several can diverge on small data).")


def fasttext_line(text: str) -> str:
    """The one preprocessing for training and scoring: lower case, one line, bounded length."""
    # A document containing "__label__..." would otherwise give itself a second label.
    return _SPACE.sub(" ", text[:MAX_CHARS].lower().replace("__label__", " ")).strip()


def _usable(texts: list[str]) -> list[str]:
    """Preprocessed lines, empty and duplicate documents dropped (first kept, order kept):
    a duplicate could land on both sides of the split and flatter the held-out metrics."""
    return [line for line in dict.fromkeys(fasttext_line(t) for t in texts) if line]


def balanced_split(
    hq_texts: list[str], lq_texts: list[str], cfg: QualityClassifierConfig
) -> dict[str, dict[str, list[str]]]:
    """Preprocessed {"train"|"holdout": {"hq"|"lq": lines}}: both classes downsampled to the
    same size, shuffled with cfg.seed, cfg.holdout_fraction of each held out."""
    usable = {"hq": _usable(hq_texts), "lq": _usable(lq_texts)}
    for label, name, given in (("hq", "high-quality", hq_texts), ("lq", "low-quality", lq_texts)):
        if len(usable[label]) < MIN_DOCS_PER_CLASS:
            raise ValueError(
                f"the {name} ({label}) set has {len(usable[label])} usable documents ({len(given)} given; "
                f"empty and duplicate documents do not count); the quality classifier needs at least "
                f"{MIN_DOCS_PER_CLASS} per class: point quality_classifier.{label}_path at a larger set"
            )
    rng = random.Random(cfg.seed)
    n = min(len(usable["hq"]), len(usable["lq"]), cfg.max_docs_per_class)
    n_hold = max(1, int(n * cfg.holdout_fraction))
    split: dict[str, dict[str, list[str]]] = {"train": {}, "holdout": {}}
    for label in ("hq", "lq"):
        sample = rng.sample(usable[label], n)  # a random subset in random order
        split["holdout"][label], split["train"][label] = sample[:n_hold], sample[n_hold:]
    return split


# Training runs in a fresh interpreter. Repeating one training (same data, thread=1, same seed)
# in one process gave a different model on the sixth try here, while fresh processes gave
# identical bytes every time: the build seems to read memory it never wrote, which a fresh
# process finds zeroed. A fresh process also keeps a crash in fastText's C++ out of the
# calling (Ray) worker and returns the training's memory when it exits.
# fastText's save does not check its writes: on a full disk it leaves a cut file and no error,
# so the child compares the size written with the size of a model of that shape.
_TRAIN = (
    "import json, os, sys, fasttext; "
    "m = fasttext.train_supervised(sys.argv[1], **json.loads(sys.argv[2])); m.save_model(sys.argv[3]); "
    "from tasks.curation.quality_model import SHORT_WRITE, _expected_bytes; "  # after: training sees fresh memory
    "size, want = os.path.getsize(sys.argv[3]), _expected_bytes(m); "
    "sys.exit(f'{SHORT_WRITE}: {size} of {want} bytes' if want not in (None, size) else 0)"
)
SHORT_WRITE = "fastText wrote the model short"


def train_quality_model(hq_texts: list[str], lq_texts: list[str], out_path: Path, cfg: QualityClassifierConfig) -> dict:
    """Balance, split, train and save the model (atomically) to out_path; return held-out
    metrics of the hq class at cfg.threshold, also written to out_path.with_suffix('.json')."""
    split = balanced_split(hq_texts, lq_texts, cfg)
    rows = [f"{HQ} {line}" for line in split["train"]["hq"]] + [f"{LQ} {line}" for line in split["train"]["lq"]]
    random.Random(cfg.seed).shuffle(rows)  # fastText reads in file order: interleave the classes
    params = {
        "epoch": cfg.epoch,
        "lr": cfg.lr,
        "dim": cfg.dim,
        "wordNgrams": cfg.word_ngrams,
        "minCount": cfg.min_count,
        "bucket": cfg.bucket,
        "seed": cfg.seed,
        "thread": cfg.threads,
        "verbose": 0,
    }
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="quality-model-") as tmp, atomic_path(out_path) as tmp_model:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN, str(train_file), json.dumps(params), str(tmp_model)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 and SHORT_WRITE in done.stderr:
            short = OSError(errno.EIO, done.stderr.strip().splitlines()[-1], str(out_path))
            raise named_if_disk_full(short, tmp_model.parent)
        if done.returncode != 0:
            hint = " (lower quality_classifier.lr, or set threads: 1)" if "NaN" in done.stderr else ""
            raise RuntimeError(f"fastText training for {out_path} failed{hint}: {done.stderr.strip()[-2000:]}")
    metrics = _held_out_metrics(QualityScorer(out_path), split, cfg.threshold)
    metrics["model_bytes"] = os.path.getsize(out_path)
    metrics["n_given"] = {"hq": len(hq_texts), "lq": len(lq_texts)}
    write_json(out_path.with_suffix(".json"), metrics)
    return metrics


def _held_out_metrics(scorer: QualityScorer, split: dict[str, dict[str, list[str]]], threshold: float) -> dict:
    hold = split["holdout"]
    # The held-out lines are preprocessed already; fasttext_line is idempotent on them.
    hq_kept = scorer.score_many(hold["hq"]) >= threshold
    lq_kept = scorer.score_many(hold["lq"]) >= threshold
    tp, fp = int(hq_kept.sum()), int(lq_kept.sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / len(hold["hq"])
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "accuracy": (tp + len(hold["lq"]) - fp) / (len(hold["hq"]) + len(hold["lq"])),
        # With crawl pages as the low-quality class: the share of (held-out) crawl pages it keeps.
        "lq_kept_share": fp / max(len(hold["lq"]), 1),
        "threshold": threshold,
        "n_train": {k: len(v) for k, v in split["train"].items()},
        "n_holdout": {k: len(v) for k, v in hold.items()},
    }


def _expected_bytes(model) -> int | None:
    """The size of an unquantized fastText .bin (format version 12) with this model's shape:
    header 8 B, args 56 B, dictionary 28 B + per entry (word, NUL, int64 count, int8 type),
    then input and output matrices (a bool and two int64 before each, float32 values)."""
    if model.is_quantized():
        return None
    args = model.f.getArgs()
    words = model.get_words(on_unicode_error="surrogateescape")
    labels = model.get_labels(on_unicode_error="surrogateescape")
    entries = sum(len(w.encode("utf-8", "surrogateescape")) + 10 for w in [*words, *labels])
    matrices = 2 * 17 + 4 * args.dim * (len(words) + args.bucket + len(labels))
    return 8 + 56 + 28 + entries + matrices


def check_quality_model(path: Path) -> None:
    """The file exists and is a whole fastText model (header and dictionary): checked before a
    run starts and again by each process that loads it."""
    if not path.is_file():
        raise FileNotFoundError(
            f"quality model {path} not found; train one with `crucible quality-model` "
            f"or set curation.quality_classifier.model_path"
        )
    from tasks.curation.fasttext_file import check_model_file

    check_model_file(path, "retrain it with `crucible quality-model`")


class QualityScorer:
    """P(high quality) of documents; the model loads on first use (once per worker)."""

    def __init__(self, model_path: Path):
        self.model_path = Path(model_path)
        self._model = None

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "_model": None}  # each process loads its own copy

    def _load(self):
        if self._model is not None:
            return self._model
        path = self.model_path
        check_quality_model(path)  # a cut dictionary hangs fastText
        import fasttext  # from fasttext-numpy2-wheel; imported here so workers that never score skip it

        try:
            model = fasttext.load_model(str(path))
        except ValueError as exc:  # fastText says only "<path> has wrong file format!"
            raise ValueError(
                f"quality model {path} is not a fastText model file ({exc}); retrain it with `crucible quality-model`"
            ) from exc
        # fastText loads a truncated file without complaint and then scores every document 0.5.
        expected, size = _expected_bytes(model), path.stat().st_size
        if expected is not None and size != expected:
            raise ValueError(
                f"quality model {path} is truncated or corrupt: {size} bytes, a model of its "
                f"shape has {expected}; retrain it with `crucible quality-model`"
            )
        if HQ not in model.get_labels():
            raise ValueError(
                f"quality model {path} has labels {model.get_labels()}, not {HQ}: it was not "
                f"trained as a quality classifier"
            )
        self._model = model
        return model

    def score(self, text: str) -> float:
        return float(self.score_many([text])[0])

    def score_many(self, texts: list[str]) -> np.ndarray:
        """P(hq) per text, float64 in [0, 1]; an empty document scores 0 (fastText would score
        it by the end-of-line token alone)."""
        model = self._load()
        lines = [fasttext_line(t) for t in texts]
        out = np.zeros(len(lines), dtype=np.float64)
        todo = [i for i, line in enumerate(lines) if line]
        if todo:
            labels, probs = model.predict([lines[i] for i in todo], k=-1)
            for i, labs, ps in zip(todo, labels, probs):
                out[i] = float(ps[list(labs).index(HQ)])
        # fastText adds 1e-5 before its log, so a sure prediction can read 1.00001.
        return np.clip(out, 0.0, 1.0)

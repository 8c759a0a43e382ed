"""Per-item metrics and their aggregates, with the harness's standard errors.

acc: the highest log-likelihood is the gold choice. acc_norm: the same after dividing each
log-likelihood by its choice's length in characters (no leading space). mc1: acc on
TruthfulQA's mc1 choices (gold first). mc2: the probability mass of the true choices,
normalised over all choices. Standard errors: sample standard deviation (n-1) / sqrt(n);
MMLU's subject-weighted figure uses the harness's pooled standard error over subjects.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tasks.evaluation.benchmarks import Doc


def item_metrics(doc: Doc, lls: list[float], metrics: tuple[str, ...]) -> dict[str, float]:
    ll = np.array(lls, dtype=np.float64)
    out: dict[str, float] = {}
    if "acc" in metrics or "mc1" in metrics:
        out["acc" if "acc" in metrics else "mc1"] = float(np.argmax(ll) == doc.gold)
    if "acc_norm" in metrics:
        lengths = np.array([float(len(c)) for c in doc.choices])
        out["acc_norm"] = float(np.argmax(ll / lengths) == doc.gold)
    if "mc2" in metrics:
        with np.errstate(over="ignore", invalid="ignore"):
            probs = np.exp(ll)  # as the harness: no max-subtraction (underflow only below ~-745 nats)
            out["mc2"] = float(np.sum((probs / np.sum(probs))[np.array(doc.labels) == 1]))
    return out


def mean_stderr(values: list[float]) -> float:
    """Standard error of the mean with the sample (n-1) variance; NaN for fewer than 2 values."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def aggregate(per_item: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and standard error of each metric. A metric that only some items have (a
    generation's `_acc`/`_diff` need false references) is averaged over those items, and
    `<metric>_n` says how many."""
    out: dict[str, Any] = {"n": len(per_item)}
    for m in dict.fromkeys(k for p in per_item for k in p):
        vals = [p[m] for p in per_item if m in p]
        out[m], out[f"{m}_stderr"] = float(np.mean(vals)), mean_stderr(vals)
        if len(vals) < len(per_item):
            out[f"{m}_n"] = len(vals)
    return out


def pooled_stderr(sizes: list[int], stderrs: list[float]) -> float:
    """The harness's group standard error for a size-weighted mean of subtasks."""
    var = sum((n - 1) * se**2 * n for n, se in zip(sizes, stderrs)) / (sum(sizes) - len(sizes))
    return float(math.sqrt(var / sum(sizes)))


def subject_summary(by_subject: dict[str, dict[str, Any]], metric: str) -> dict[str, float]:
    """MMLU over subjects: the size-weighted mean (= the mean over all questions, the harness's
    `mmlu` figure) and the plain mean of the subjects' scores, each with a standard error."""
    subs = [s for s in by_subject.values() if s["n"]]
    sizes = [s["n"] for s in subs]
    scores = [s[metric] for s in subs]
    errs = [s[f"{metric}_stderr"] for s in subs]
    weighted = float(np.average(scores, weights=sizes))
    finite = all(math.isfinite(e) for e in errs) and sum(sizes) > len(sizes)
    return {
        metric: weighted,
        f"{metric}_stderr": pooled_stderr(sizes, errs) if finite else float("nan"),
        f"{metric}_subject_mean": float(np.mean(scores)),
        f"{metric}_subject_mean_stderr": float(math.sqrt(sum(e**2 for e in errs)) / len(errs))
        if finite
        else float("nan"),
    }


def random_chance(docs: list[Doc], metric: str) -> float:
    """The expected score of guessing uniformly: 1/k per item (mc2: the true choices' share)."""
    if not docs:
        return float("nan")
    if metric == "mc2":
        shares = []
        for d in docs:
            assert d.labels is not None  # every mc2 item labels its choices
            shares.append(sum(d.labels) / len(d.choices))
        return float(np.mean(shares))
    return float(np.mean([1 / len(d.choices) for d in docs]))

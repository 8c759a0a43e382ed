"""HellaSwag 0-shot, with lm-evaluation-harness's prompt, preprocessing and metrics.

Prompt: "<activity_label>: <ctx_a> <Ctx_b>" after preprocessing; each of the four endings
is scored as the continuation " <ending>". `acc` picks the highest log-likelihood,
`acc_norm` the highest log-likelihood per character of the ending.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from tasks.evaluation.loglikelihood import Request

REQUIRED = ("activity_label", "ctx_a", "ctx_b", "endings", "label")
RANDOM_CHANCE = 0.25


def preprocess(text: str) -> str:
    text = text.strip()
    # WikiHow items carry bracketed markup such as " [title]" and "[header]".
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def render(doc: dict[str, Any]) -> tuple[str, list[str], int]:
    """(query, endings, gold index) for one item in the Hugging Face schema."""
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    query = preprocess(doc["activity_label"] + ": " + ctx)
    return query, [preprocess(e) for e in doc["endings"]], int(doc["label"])


def load_items(path: Path, limit: int) -> list[dict[str, Any]]:
    """The first `limit` items of a HellaSwag JSONL file, each checked for the fields used."""
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if len(items) >= limit:
                break
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or re-download the file") from exc
            missing = [k for k in REQUIRED if k not in doc]
            if missing:
                raise ValueError(
                    f"{path}:{lineno}: missing field(s) {', '.join(missing)}; expected the Hugging "
                    f"Face Rowan/hellaswag schema"
                )
            items.append(doc)
    return items


def requests_for(doc: dict[str, Any]) -> list[Request]:
    query, endings, _ = render(doc)
    return [Request(query, " " + e) for e in endings]


def mean_stderr(values: list[float]) -> float:
    """Standard error of the mean with the sample (n-1) variance, as the harness reports."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def score(docs: list[dict[str, Any]], lls: list[float]) -> dict[str, Any]:
    """acc and acc_norm with standard errors; `lls` holds four log-likelihoods per item, in order."""
    acc, acc_norm = [], []
    for k, doc in enumerate(docs):
        _, endings, gold = render(doc)
        item = np.array(lls[4 * k : 4 * k + 4])
        lengths = np.array([float(len(e)) for e in endings])
        acc.append(float(np.argmax(item) == gold))
        acc_norm.append(float(np.argmax(item / lengths) == gold))
    return {
        "n": len(docs),
        "acc": float(np.mean(acc)), "acc_stderr": mean_stderr(acc),
        "acc_norm": float(np.mean(acc_norm)), "acc_norm_stderr": mean_stderr(acc_norm),
        "random_chance": RANDOM_CHANCE,
    }

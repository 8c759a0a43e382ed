"""Dedup and PII quality of the curate flow against the noise injector's ground truth.

Input: real documents (benchmarks/curation_input.py's sources, sampled across them) with
planted exact duplicates, near-duplicates edited to known Jaccard similarities, and PII of
every type (plus hard negatives). The curate flow runs on it (heuristic filters, the
quality classifier and decontamination off, so every document reaches dedup).

Dedup ground truth: every pair of documents whose exact Jaccard similarity on the same
5-word shingles (tasks/curation/shingles.py) is >= 0.8, found through an inverted index.
- recall: true pairs whose two documents ended in the same duplicate cluster (one kept),
- precision: of the pairs the dedup declared duplicates (the verified candidate pairs),
  the share that are true pairs; also reported for all same-cluster pairs, which counts
  chains (a~b, b~c, but a and c below 0.8) against us.
PII: for each planted value, whether the redactor's span covers it with the right type
(recall), and of the spans it finds in the planted documents that were not already in the
source document, the share that are planted values of that type (precision); planted
negatives (dates, versions, order numbers, hashes) that get redacted count as errors.
Usage: .venv/bin/python benchmarks/curation_quality.py [--docs 3000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

import pyarrow.parquet as pq
from curation_input import base_documents  # benchmarks/ is on sys.path when run as a script

from tasks.curation.config import CurationConfig
from tasks.curation.noise import NoiseConfig, write_noisy_corpus
from tasks.curation.redact import RedactionConfig, find_pii
from tasks.curation.shingles import shingles

THRESHOLD = 0.8


def sample_documents(n: int, stride: int = 7) -> list[dict]:
    return [d for i, d in enumerate(islice(base_documents(), n * stride)) if i % stride == 0][:n]


def true_pairs(docs: dict[str, str], n: int = 5) -> dict[tuple[str, str], float]:
    """All pairs with exact shingle Jaccard >= THRESHOLD (candidates via shared shingles)."""
    sets = {i: shingles(t, n) for i, t in docs.items()}
    index: dict[str, list[str]] = defaultdict(list)
    for i, s in sets.items():
        for sh in s:
            index[sh].append(i)
    shared: Counter[tuple[str, str]] = Counter()
    for ids in index.values():
        if len(ids) > 200:  # boilerplate shingles; any true pair shares many rarer ones too
            continue
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                shared[tuple(sorted((ids[a], ids[b])))] += 1
    out = {}
    for (a, b), inter in shared.items():
        # Pairs with J >= 0.8 share >= 0.8 * min(|A|, |B|) shingles: skip the rest unseen.
        if inter < THRESHOLD * min(len(sets[a]), len(sets[b])):
            continue
        j = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
        if j >= THRESHOLD:
            out[(a, b)] = j
    return out


def run_flow(work: Path, cfg: CurationConfig) -> Path:
    from flows.config import RuntimeConfig
    from flows.curate import curate_flow
    from infra.app.runtime import embedded_runtime

    with embedded_runtime(RuntimeConfig(prefect_port=4231), work / "logs"):
        curate_flow(cfg, str(work / "run"))
    return work / "run" / "curated"


def dedup_quality(curated: Path, docs: dict[str, str]) -> dict:
    truth = true_pairs(docs)
    removed = [r for p in (curated / "removed").glob("dedup-*.parquet") for r in pq.read_table(p).to_pylist()]
    cluster = {i: i for i in docs}
    declared = set()
    for r in removed:
        kept = r["detail"].removeprefix("duplicate of ")
        cluster[r["id"]] = kept
        declared.add(tuple(sorted((r["id"], kept))))
    members: dict[str, list[str]] = defaultdict(list)
    for i, c in cluster.items():
        members[c].append(i)
    same_cluster = {tuple(sorted((a, b))) for m in members.values() for x, a in enumerate(m) for b in m[x + 1 :]}
    hit = sum(1 for p in truth if cluster[p[0]] == cluster[p[1]])
    return {
        "true_pairs": len(truth),
        "recall": hit / max(len(truth), 1),
        "removed": len(removed),
        "reasons": dict(Counter(r["reason"] for r in removed)),
        "declared_pairs": len(declared),
        "declared_precision": sum(1 for p in declared if p in truth) / max(len(declared), 1),
        "cluster_pairs": len(same_cluster),
        "cluster_pair_precision": sum(1 for p in same_cluster if p in truth) / max(len(same_cluster), 1),
    }


def pii_quality(noisy: dict[str, str], labels: list[dict], sources: dict[str, str]) -> dict:
    cfg = RedactionConfig()
    planted = Counter()
    found = Counter()
    predicted = Counter()
    correct = Counter()
    negatives = redacted_negatives = 0
    for lab in labels:
        if lab.get("kind") != "pii":
            continue
        text = noisy[lab["id"]]
        spans = find_pii(text, cfg)
        pre_existing = {sources[lab["source"]][m.start : m.end] for m in find_pii(sources[lab["source"]], cfg)}
        for p in lab["pii"]:
            planted[p["type"]] += 1
            # Overlap, not full cover: an assigned secret (api_key = "...") is redacted value-only.
            if any(m.type == p["type"] and m.start < p["end"] and p["start"] < m.end for m in spans):
                found[p["type"]] += 1
        for m in spans:
            if text[m.start : m.end] in pre_existing:
                continue  # real PII already in the source document: not ours to judge
            predicted[m.type] += 1
            if any(p["type"] == m.type and m.start < p["end"] and p["start"] < m.end for p in lab["pii"]):
                correct[m.type] += 1
        for neg in lab.get("negatives", []):
            negatives += 1
            redacted_negatives += any(m.start < neg["end"] and neg["start"] < m.end for m in spans)
    return {
        "per_type": {
            t: {
                "planted": planted[t],
                "recall": found[t] / max(planted[t], 1),
                "predicted": predicted[t],
                "precision": correct[t] / max(predicted[t], 1),
            }
            for t in sorted(planted)
        },
        "negatives": negatives,
        "negatives_redacted": redacted_negatives,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=3000, help="real documents before noise is planted")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curation-quality-"))
    try:
        base = sample_documents(args.docs)
        noise = NoiseConfig(seed=0, exact_dup_fraction=0.05, near_dup_fraction=0.3, pii_fraction=0.2, spam_fraction=0.0)
        counts = write_noisy_corpus(base, work / "input", noise)
        labels = [json.loads(line) for line in (work / "input" / "labels.jsonl").open()]
        (work / "input" / "labels.jsonl").unlink()  # not an input document
        noisy = {
            d["id"]: d["text"]
            for f in sorted((work / "input").glob("*.jsonl"))
            for d in map(json.loads, f.open(encoding="utf-8"))
        }
        print(f"input: {len(base)} real documents + planted {counts} -> {len(noisy)} documents")
        cfg = CurationConfig.model_validate(
            {
                "input_path": str(work / "input"),
                "heuristics": {k: {"enabled": False} for k in ("gopher_quality", "gopher_repetition", "c4", "fineweb")},
                "quality_classifier": {"enabled": False},
                "decontamination": {"enabled": False},
            }
        )
        curated = run_flow(work, cfg)
        d = dedup_quality(curated, noisy)
        print(
            f"dedup: {d['true_pairs']} true pairs at Jaccard >= {THRESHOLD}; recall {d['recall']:.4f} "
            f"(same cluster); precision {d['declared_precision']:.4f} of {d['declared_pairs']} declared pairs "
            f"(removed document, kept document); same-cluster pair precision {d['cluster_pair_precision']:.4f} "
            f"of {d['cluster_pairs']}; removed {d['reasons']}"
        )
        sources = dict(noisy.items())
        p = pii_quality(noisy, labels, sources)
        for t, v in p["per_type"].items():
            print(
                f"pii {t:12s} planted {v['planted']:4d}  recall {v['recall']:.4f}  "
                f"precision {v['precision']:.4f} ({v['predicted']} found)"
            )
        print(f"pii hard negatives redacted: {p['negatives_redacted']} of {p['negatives']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

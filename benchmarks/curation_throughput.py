"""Curation throughput against datatrove on the same input, in the same run.

Both run the same steps: Gopher repetition + quality filters, MinHash near-duplicate
removal with 5-word shingles and 14 bands x 8 rows, and PII formatting. Ours is the
`curate` flow (Prefect + Ray, `--workers` CPUs) with its other steps switched off, and
our PII step redacting all eight types (datatrove's formatter does e-mails and IPs only,
so the comparison is conservative). Datatrove runs its filters, its four-stage MinHash
(signatures, buckets, clusters, filter) and its PIIFormatter with LocalPipelineExecutor
on the same number of workers. Figures: docs/s and MB/s per core, the ratio, peak memory
per worker, and how far the two agree on which documents are near-duplicates.
Needs the `bench` extra (datatrove, spacy): .venv/bin/pip install -e '.[bench]'
Usage: .venv/bin/python benchmarks/curation_input.py --mb 100 --noise --out /tmp/cur100n
       .venv/bin/python benchmarks/curation_throughput.py --input /tmp/cur100n [--workers 2] [--no-filters]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from flows.config import RuntimeConfig
from tasks.curation.config import CurationConfig
from tasks.curation.rules import HeuristicsConfig


def our_config(input_dir: Path, filters: bool) -> CurationConfig:
    gopher = {"enabled": filters}
    return CurationConfig.model_validate(
        {
            "input_path": str(input_dir),
            "heuristics": {
                "c4": {"enabled": False},
                "fineweb": {"enabled": False},
                "gopher_quality": gopher,
                "gopher_repetition": gopher,
            },
            "quality_classifier": {"enabled": False},
            "decontamination": {"enabled": False},
            "exact_dedup": {"enabled": False},
        }
    )


def run_ours(input_dir: Path, work: Path, workers: int, filters: bool) -> dict:
    from flows.curate import curate_flow
    from infra.app.runtime import embedded_runtime

    runtime = RuntimeConfig(ray_num_cpus=workers, prefect_port=4230)
    with embedded_runtime(runtime, work / "logs"):
        start = time.perf_counter()
        summary = curate_flow(our_config(input_dir, filters), str(work / "run"))
        wall = time.perf_counter() - start
    curated = work / "run" / "curated"
    removed = {
        r["id"]
        for p in (curated / "removed").glob("dedup-*.parquet")
        for r in pq.read_table(p, columns=["id", "reason"]).to_pylist()
        if r["reason"] == "minhash_duplicate"
    }
    filtered_out = {
        r["id"]
        for p in (curated / "removed").glob("filter-*.parquet")
        for r in pq.read_table(p, columns=["id"]).to_pylist()
    }
    return {
        "wall_s": wall,
        "docs": summary["totals"]["docs_in"],
        "bytes": summary["totals"]["bytes_in"],
        "near_dups": removed,
        "filtered_out": filtered_out,
        "peak_worker_mb": summary.get("peak_worker_rss_mb"),
    }


def run_datatrove(input_dir: Path, work: Path, workers: int, filters: bool) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    files = len(list(input_dir.glob("*.jsonl")))
    mh = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
    w = str(work)
    gopher = (
        [
            GopherRepetitionFilter(exclusion_writer=JsonlWriter(f"{w}/filtered-out")),
            GopherQualityFilter(exclusion_writer=JsonlWriter(f"{w}/filtered-out2")),
        ]
        if filters
        else []
    )
    stages = [
        ([JsonlReader(str(input_dir)), *gopher, JsonlWriter(f"{w}/filtered")], files),
        ([JsonlReader(f"{w}/filtered"), MinhashDedupSignature(f"{w}/sigs", config=mh)], files),
        ([MinhashDedupBuckets(f"{w}/sigs", f"{w}/buckets", config=mh)], mh.num_buckets),
        ([MinhashDedupCluster(f"{w}/buckets", f"{w}/remove_ids", config=mh)], 1),
        (
            [
                JsonlReader(f"{w}/filtered"),
                MinhashDedupFilter(f"{w}/remove_ids", exclusion_writer=JsonlWriter(f"{w}/removed")),
                PIIFormatter(),
                JsonlWriter(f"{w}/out"),
            ],
            files,
        ),
    ]
    start = time.perf_counter()
    for i, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(
            pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=f"{w}/logs/stage{i}"
        ).run()
    wall = time.perf_counter() - start

    def ids(folder: str) -> set[str]:
        import gzip

        out = set()
        for p in Path(folder).glob("*.jsonl.gz"):
            with gzip.open(p, "rt", encoding="utf-8") as f:
                out.update(json.loads(line)["id"] for line in f)
        return out

    return {
        "wall_s": wall,
        "near_dups": ids(f"{w}/removed"),
        "filtered_out": ids(f"{w}/filtered-out") | ids(f"{w}/filtered-out2"),
        # forkserver children are gone by now; RUSAGE_CHILDREN is the largest of them
        "peak_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, required=True, help="folder of JSONL files (benchmarks/curation_input.py)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=["ours", "datatrove"], default=None)
    ap.add_argument(
        "--no-filters", action="store_true", help="MinHash + PII only: both systems then deduplicate every document"
    )
    args = ap.parse_args()
    HeuristicsConfig()  # fail early if the rules package is missing
    work = Path(tempfile.mkdtemp(prefix="curation-bench-"))
    mb = sum(p.stat().st_size for p in args.input.glob("*.jsonl")) / 2**20
    res = {}
    try:
        if args.only != "datatrove":
            res["ours"] = run_ours(args.input, work / "ours", args.workers, not args.no_filters)
        if args.only != "ours":
            res["datatrove"] = run_datatrove(args.input, work / "datatrove", args.workers, not args.no_filters)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    docs = res.get("ours", {}).get("docs")
    steps = "MinHash + PII" if args.no_filters else "Gopher filters + MinHash + PII"
    print(f"input: {args.input} ({mb:.1f} MB, {docs or '?'} documents), {args.workers} workers, {steps}")
    for name, r in res.items():
        per_core = r["wall_s"] * args.workers
        print(
            f"{name:10s} wall {r['wall_s']:.1f} s   {mb / per_core:.3f} MB/s per core   "
            + (f"{docs / per_core:.1f} docs/s per core   " if docs else "")
            + f"peak worker memory {r['peak_worker_mb'] or 0:.0f} MB   near-duplicates removed {len(r['near_dups'])}"
        )
    if len(res) == 2:
        o, d = res["ours"], res["datatrove"]
        print(f"throughput ratio ours/datatrove: {d['wall_s'] / o['wall_s']:.2f}x")
        common_out = o["filtered_out"] | d["filtered_out"]  # judge dedup only where both kept the doc
        a, b = o["near_dups"] - common_out, d["near_dups"] - common_out
        union = a | b
        print(
            f"near-duplicate agreement on documents both kept after filtering: {len(a & b)} removed by both, "
            f"{len(a - b)} only by ours, {len(b - a)} only by datatrove; "
            f"Jaccard {len(a & b) / max(len(union), 1):.3f}"
        )
        print(
            f"filter agreement: {len(o['filtered_out'] & d['filtered_out'])} removed by both, "
            f"{len(o['filtered_out'] - d['filtered_out'])} only ours, "
            f"{len(d['filtered_out'] - o['filtered_out'])} only datatrove"
        )


if __name__ == "__main__":
    main()

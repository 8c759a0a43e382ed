"""Scaling of the curate flow with the input: seconds per MB, peak memory per worker, files
written and bytes shuffled at each size (the goal: flat seconds per MB and memory per worker,
within 10% from the smallest input to the largest), and optionally throughput with 1 and 2
Ray workers.

Runs the same steps as curation_throughput.py (Gopher filters, MinHash, PII) on inputs built
by curation_input.py, one run per input, largest last. Peak memory per worker is the largest
resident set any Ray worker process reached while running curation tasks (each task reports
its process's ru_maxrss). Files and bytes are what the stage wrote under its scratch folder
(`details.scratch` of stats.json): "shuffled" counts the dedup keys, shingle sets, ids,
candidate pairs, component edges and drop lists, not the scratch text shards. The load
average is read before and after each run.
Usage: .venv/bin/python benchmarks/curation_input.py --mb 100 --noise --out /tmp/cur100n
       .venv/bin/python benchmarks/curation_input.py --mb 1000 --noise --out /tmp/cur1g
       .venv/bin/python benchmarks/curation_input.py --mb 4000 --noise --out /tmp/cur4g
       .venv/bin/python benchmarks/curation_scaling.py /tmp/cur100n /tmp/cur1g /tmp/cur4g [--speedup]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from curation_throughput import run_ours  # benchmarks/ is on sys.path when run as a script

TEXT_SCRATCH = ("filtered",)  # scratch copies of the surviving text, not shuffle data


def _mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.jsonl")) / 2**20


def _one(folder: Path, workers: int, filters: bool = True) -> dict:
    work = Path(tempfile.mkdtemp(prefix="curation-scaling-"))
    load_before = os.getloadavg()[0]
    try:
        r = run_ours(folder, work, workers, filters=filters)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scratch = r["scratch"]
    shuffled = {k: v for k, v in scratch["by_folder"].items() if k not in TEXT_SCRATCH and k != "markers"}
    mb = _mb(folder)
    return {
        "input": str(folder),
        "mb": mb,
        "docs": r["docs"],
        "workers": workers,
        "wall_s": r["wall_s"],
        "s_per_mb": r["wall_s"] / mb,
        "peak_worker_mb": r["peak_worker_mb"],
        "files": scratch["files"],
        "shuffled_mb": sum(v["bytes"] for v in shuffled.values()) / 2**20,
        "shuffled_files": sum(v["files"] for v in shuffled.values()),
        "load": (load_before, os.getloadavg()[0]),
        "kept_by_filters": r["totals"]["docs_in"]
        - sum(v["docs"] for k, v in r["totals"]["removed_by_reason"].items() if not k.endswith("duplicate")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path, nargs="+", help="input folders, smallest first")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--speedup", action="store_true", help="also run the smallest input on 1 worker")
    ap.add_argument(
        "--no-filters",
        action="store_true",
        help="Gopher filters off, so every document reaches MinHash and PII (curation_input.py's larger "
        "inputs are word-mapped variants of the base, which the Gopher stop-word rule mostly removes)",
    )
    args = ap.parse_args()
    rows = []
    if args.speedup:
        one = _one(args.inputs[0], 1, not args.no_filters)
    for folder in args.inputs:
        rows.append(_one(folder, args.workers, not args.no_filters))
        r = rows[-1]
        print(
            f"{r['mb']:.0f} MB ({r['docs']} docs), {r['workers']} workers: {r['wall_s']:.1f} s, "
            f"{r['s_per_mb']:.3f} s/MB, peak memory per worker {r['peak_worker_mb']:.0f} MB, "
            f"{r['files']} scratch files, {r['shuffled_files']} files / {r['shuffled_mb']:.0f} MB shuffled, "
            f"load {r['load'][0]:.1f} -> {r['load'][1]:.1f}",
            flush=True,
        )
    print("| input | documents | wall | s per MB | peak memory per worker | files written | shuffled | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mb']:,.0f} MB | {r['docs']:,} | {r['wall_s']:.0f} s | {r['s_per_mb']:.3f} | "
            f"{r['peak_worker_mb']:.0f} MB | {r['files']:,} | "
            f"{r['shuffled_files']:,} files, {r['shuffled_mb']:,.0f} MB | "
            f"{r['load'][0]:.1f} -> {r['load'][1]:.1f} |"
        )
    small, large = rows[0], rows[-1]
    print(
        f"largest vs smallest: s/MB {large['s_per_mb'] / small['s_per_mb']:.2f}x, "
        f"memory per worker {large['peak_worker_mb'] / small['peak_worker_mb']:.2f}x "
        f"for {large['mb'] / small['mb']:.0f}x the input (goal: both within 1.10x)"
    )
    if args.speedup:
        speedup = one["wall_s"] / small["wall_s"]
        print(f"speed-up from 1 to {args.workers} workers on {small['mb']:.0f} MB: {speedup:.2f}x")


if __name__ == "__main__":
    main()

"""Scaling of the curate flow: throughput with 1 and 2 Ray workers, and peak memory per
worker as the input grows (the goal: flat, since no step holds the corpus).

Runs the same steps as curation_throughput.py (Gopher filters, MinHash, PII) on inputs built
by curation_input.py. Peak memory per worker is the largest resident set any Ray worker
process reached while running curation tasks (each task reports its process's ru_maxrss).
Usage: .venv/bin/python benchmarks/curation_input.py --mb 100 --noise --out /tmp/cur100n
       .venv/bin/python benchmarks/curation_input.py --mb 400 --noise --out /tmp/cur400n
       .venv/bin/python benchmarks/curation_scaling.py --small /tmp/cur100n --large /tmp/cur400n
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from curation_throughput import run_ours  # benchmarks/ is on sys.path when run as a script


def _mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.jsonl")) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=Path, required=True)
    ap.add_argument("--large", type=Path, required=True)
    args = ap.parse_args()
    runs = [(args.small, 1), (args.small, 2), (args.large, 2)]
    rows = []
    for folder, workers in runs:
        work = Path(tempfile.mkdtemp(prefix="curation-scaling-"))
        try:
            r = run_ours(folder, work, workers, filters=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        mb = _mb(folder)
        rows.append((folder, mb, workers, r))
        print(
            f"{folder} ({mb:.0f} MB, {r['docs']} docs), {workers} worker(s): wall {r['wall_s']:.1f} s, "
            f"{mb / r['wall_s']:.2f} MB/s, {r['docs'] / r['wall_s']:.0f} docs/s, "
            f"peak memory per worker {r['peak_worker_mb']:.0f} MB",
            flush=True,
        )
    one, two, large = rows
    print(f"speed-up from 1 to 2 workers: {one[3]['wall_s'] / two[3]['wall_s']:.2f}x")
    print(
        f"peak memory per worker, {large[1]:.0f} MB vs {two[1]:.0f} MB input: "
        f"{large[3]['peak_worker_mb']:.0f} vs {two[3]['peak_worker_mb']:.0f} MB "
        f"({large[3]['peak_worker_mb'] / two[3]['peak_worker_mb']:.2f}x for {large[1] / two[1]:.1f}x the input)"
    )


if __name__ == "__main__":
    main()

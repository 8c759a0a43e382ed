"""A long fuzzing run of the input readers: the properties of tests/fuzz/readers.py (JSONL
plain, .gz and .zst, cut or whole; Parquet; WARC, garbled or not; folders of HTML pages)
over many more generated inputs than the test suite's short run. Reports, per reader, the
inputs tried and the failures found (with the smallest failing input Hypothesis shrank to).

Usage: .venv/bin/python benchmarks/fuzz_readers.py [--examples 5000] [--seed N] [--out results/fuzz.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not an installed package

from tests.fuzz.readers import PROPERTIES  # after the path above


def fuzz(name: str, examples: int, seed: int | None) -> dict:
    strategy, check = PROPERTIES[name]
    tried = 0

    def counted(case) -> None:
        nonlocal tried
        tried += 1
        check(case)

    run = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
        given(strategy)(counted)
    )
    if seed is not None:
        from hypothesis import seed as with_seed

        run = with_seed(seed)(run)
    started = time.perf_counter()
    failure = None
    try:
        run()
    except Exception as exc:  # Hypothesis re-raises the shrunk failing example's error
        failure = f"{type(exc).__name__}: {str(exc)[:2000]}"
    return {"inputs_tried": tried, "failures": 0 if failure is None else 1, "failure": failure,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=5000, help="generated inputs per reader (default 5000)")
    ap.add_argument("--seed", type=int, default=None, help="repeat a run (default: a fresh draw)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    logging.getLogger("tasks.curation.reader").setLevel(logging.ERROR)  # a warning per cut file drawn
    results = {name: fuzz(name, args.examples, args.seed) for name in sorted(PROPERTIES)}
    print(f"{'reader':8} {'inputs tried':>12} {'failures':>9} {'seconds':>8}")
    for name, r in results.items():
        print(f"{name:8} {r['inputs_tried']:>12} {r['failures']:>9} {r['seconds']:>8}")
        if r["failure"]:
            print(f"  {r['failure']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["failures"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

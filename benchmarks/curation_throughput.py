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

--stage-cost BEFORE_TREE measures instead what text repair, the secret rules and
exact-substring dedup cost the whole curate stage (every step at its default but the quality
classifier, which needs a reference set; decontamination against the benchmark test files):
the same stage run from BEFORE_TREE (a checkout from before those steps, e.g.
`git worktree add /tmp/before 43b9d03~1`), from this tree with `repair_text` off (JSONL's
default), on, and with `substring_dedup` on as well, alternating, `--repeats` times each. It also
times the two steps alone on one core over the same documents (repair_text + key_text, and
redact against BEFORE_TREE's redact), so the cost is seen without the runs' noise.
Usage: .venv/bin/python benchmarks/curation_input.py --mb 100 --noise --out /tmp/cur100n
       .venv/bin/python benchmarks/curation_throughput.py --input /tmp/cur100n [--workers 2] [--no-filters]
       .venv/bin/python benchmarks/curation_throughput.py --input /tmp/cur100n --stage-cost /tmp/before
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


def whole_stage_config(input_dir: Path, repair: bool, substring: bool) -> CurationConfig:
    """Every step at its default, but the quality classifier (it needs a reference set).
    Keys this tree's config does not know (an older checkout's) are left out."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    benchmarks = sorted(str(p) for p in shared.glob("*/*.jsonl")) if shared.is_dir() else []
    if not benchmarks:
        benchmarks = sorted(
            str(p) for p in (Path(__file__).resolve().parents[1] / "tests/fixtures/eval").glob("*/*.jsonl")
        )
    data: dict = {
        "input_path": str(input_dir),
        "quality_classifier": {"enabled": False},
        "decontamination": {"benchmark_paths": benchmarks},
    }
    if "repair_text" in CurationConfig.model_fields:
        data["repair_text"] = repair
        data["substring_dedup"] = {"enabled": substring}
    return CurationConfig.model_validate(data)


def run_ours(input_dir: Path, work: Path, workers: int, filters: bool, cfg: CurationConfig | None = None) -> dict:
    from flows.curate import curate_flow
    from infra.app.runtime import embedded_runtime

    runtime = RuntimeConfig(ray_num_cpus=workers, prefect_port=4230)
    with embedded_runtime(runtime, work / "logs"):
        start = time.perf_counter()
        summary = curate_flow(cfg or our_config(input_dir, filters), str(work / "run"))
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
        "totals": summary["totals"],
        "substring_dedup": summary["details"].get("substring_dedup"),
        "scratch": summary["details"].get("scratch"),
        "details": summary["details"],
    }


def _one_stage_run(input_dir: Path, workers: int, repair: bool, substring: bool) -> None:
    """Child process of --stage-cost: one whole-stage run, its figures as JSON on the last line."""
    work = Path(tempfile.mkdtemp(prefix="curation-stage-"))
    try:
        r = run_ours(input_dir, work, workers, True, whole_stage_config(input_dir, repair, substring))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keep = ("wall_s", "docs", "bytes", "peak_worker_mb", "totals", "substring_dedup")
    print(json.dumps({k: r[k] for k in keep}))


def _documents(input_dir: Path) -> list[str]:
    return [json.loads(line)["text"] for p in sorted(input_dir.glob("*.jsonl")) for line in p.open(encoding="utf-8")]


def _best_of(fn, docs: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for d in docs:
            fn(d)
        best = min(best, time.perf_counter() - start)
    return best


def _substring_alone(input_dir: Path) -> None:
    """Child process: exact-substring dedup over every document of the input as one group
    (what the stage gives it is only what the filters keep), its time and memory as JSON."""
    import pyarrow as pa

    from tasks.curation.substring_dedup import find_spans

    work = Path(tempfile.mkdtemp(prefix="substring-"))
    try:
        docs = _documents(input_dir)
        nbytes = sum(len(d.encode()) for d in docs)
        pq.write_table(pa.table({"text": docs}), work / "docs.parquet")
        del docs
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        result = find_spans([work / "docs.parquet"], [set()], 50, [work / "spans.npy"])
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({**result, "mb": nbytes / 2**20, "seconds": seconds, "peak_mb": peak, "before_mb": base}))


def step_timings(input_dir: Path, before_tree: Path) -> dict:
    """The repair and redaction steps alone, one core, over every document of the input."""
    import importlib.util
    import sys

    from tasks.curation.redact import RedactionConfig, redact
    from tasks.curation.repair import key_text, repair_text

    spec = importlib.util.spec_from_file_location("redact_before", before_tree / "tasks/curation/redact.py")
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # dataclasses look their module up while the class is built
    spec.loader.exec_module(old)
    docs = _documents(input_dir)
    cfg, old_cfg = RedactionConfig(), old.RedactionConfig()
    return {
        "mb": sum(len(d.encode()) for d in docs) / 2**20,
        "repair_s": _best_of(lambda d: key_text(repair_text(d)), docs),
        "redact_s": _best_of(lambda d: redact(d, cfg), docs),
        "redact_before_s": _best_of(lambda d: old.redact(d, old_cfg), docs),
    }


def stage_cost(input_dir: Path, before_tree: Path, workers: int, repeats: int) -> None:
    import os
    import subprocess
    import sys

    here = Path(__file__).resolve().parents[1]
    runs: dict[str, list[dict]] = {"before": [], "new, repair off": [], "repair": [], "repair+substring": []}
    for _ in range(repeats):
        for name, tree, flags in (
            ("before", before_tree, []),
            ("new, repair off", here, []),
            ("repair", here, ["--repair"]),
            ("repair+substring", here, ["--repair", "--substring"]),
        ):
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, __file__, "--input", str(input_dir), "--workers", str(workers), "--one-run", *flags]
            out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"{name} run failed:\n{out.stderr[-3000:]}")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{name:18s} wall {runs[name][-1]['wall_s']:.1f} s", flush=True)
    mb = runs["before"][0]["bytes"] / 2**20
    best = {name: min(r["wall_s"] for r in rs) for name, rs in runs.items()}
    print(f"input: {input_dir} ({mb:.1f} MB, {runs['before'][0]['docs']} documents), {workers} workers, whole stage")
    for name, wall in best.items():
        print(f"{name:18s} best wall {wall:.1f} s   {mb / (wall * workers):.3f} MB/s per core")
    print(
        f"this tree against the stage before (best of {repeats}): {best['repair'] / best['before'] - 1:+.1%} with "
        f"repair on (every change: repair, secret rules, furniture and language rules); "
        f"{best['new, repair off'] / best['before'] - 1:+.1%} with repair off; repair alone "
        f"{best['repair'] / best['new, repair off'] - 1:+.1%}"
    )
    sub = runs["repair+substring"][0]["substring_dedup"]
    print(
        f"substring step: {sub['seconds']:.1f} s on one core for {sub['text_bytes'] / 2**20:.1f} MB "
        f"({sub['text_bytes'] / 2**20 / sub['seconds']:.2f} MB/s per core), peak worker memory "
        f"{sub['peak_rss_mb']:.0f} MB; {sub['spans']} spans, {sub['tokens_cut']} of {sub['tokens']} words cut; "
        f"stage wall {best['repair+substring'] / best['repair'] - 1:+.1%} against the repair run"
    )
    import subprocess
    import sys

    cmd = [sys.executable, __file__, "--input", str(input_dir), "--substring-alone"]
    alone = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    print(
        f"substring step alone on all {alone['mb']:.1f} MB ({alone['tokens']:,} words, one group, one core): "
        f"{alone['seconds']:.1f} s, {alone['mb'] / alone['seconds']:.1f} MB/s; process peak {alone['peak_mb']:.0f} MB "
        f"(high-water mark before it, with the documents loaded: {alone['before_mb']:.0f} MB); {alone['spans']:,} "
        f"spans, {alone['tokens_cut']:,} words cut"
    )
    t = step_timings(input_dir, before_tree)
    stage_cpu = best["before"] * workers
    print(
        f"steps alone, one core, {t['mb']:.1f} MB: repair {t['repair_s']:.1f} s ({t['mb'] / t['repair_s']:.1f} MB/s), "
        f"redact {t['redact_s']:.1f} s against {t['redact_before_s']:.1f} s before; "
        f"repair + added redaction time = {(t['repair_s'] + t['redact_s'] - t['redact_before_s']) / stage_cpu:.1%} "
        f"of the stage's core-seconds before"
    )


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
    ap.add_argument("--stage-cost", type=Path, metavar="BEFORE_TREE", help="see above")
    ap.add_argument("--repeats", type=int, default=2, help="--stage-cost: runs of each kind")
    ap.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--repair", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--substring", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--substring-alone", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.substring_alone:
        return _substring_alone(args.input)
    if args.one_run:
        return _one_stage_run(args.input, args.workers, args.repair, args.substring)
    if args.stage_cost:
        return stage_cost(args.input, args.stage_cost.resolve(), args.workers, args.repeats)
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

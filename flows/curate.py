"""The `curate` flow: raw documents in, curated Parquet shards, removed/ shards and stats out."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.progress import gather
from infra.storage import RunDir, write_json
from tasks.curation.config import CurationConfig
from tasks.curation.prefect_tasks import demo_corpus_task, filter_shard_task, finalize_shard_task
from tasks.curation.reader import discover_inputs
from tasks.curation.shard import combine_steps, find_exact_duplicates
from tasks.curation.stats import StageStats

log = logging.getLogger(__name__)


def stats_table(stats: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"outcome": "in", "docs": stats["docs_in"], "bytes": stats["bytes_in"]},
            {"outcome": "kept", "docs": stats["docs_kept"], "bytes": stats["bytes_kept"]}]
    rows += [{"outcome": f"removed: {r}", **v} for r, v in stats["removed_by_reason"].items()]
    rows += [{"outcome": f"redacted: {k}", "docs": n, "bytes": ""} for k, n in stats["redactions"].items()]
    return rows


@flow(name="curate", task_runner=RayTaskRunner())
def curate_flow(cfg: CurationConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir))
    source = demo_corpus_task() if cfg.input_path == "demo" else str(Path(cfg.input_path).resolve())
    files, skipped = discover_inputs(source)
    if skipped:
        log.warning("ignoring %d file(s) that are not JSONL/Parquet under %s, e.g. %s",
                    len(skipped), source, skipped[0])
    curated = str(run.curated.resolve())
    log.info("curating %d input file(s) from %s", len(files), source)

    first = gather([filter_shard_task.submit(str(f), i, cfg, curated) for i, f in enumerate(files)],
                   "filter shards")
    hashes = [r["hashes"] for r in first]
    drops = find_exact_duplicates(hashes) if cfg.exact_dedup else [[] for _ in hashes]
    second = gather([finalize_shard_task.submit(i, d, cfg, curated) for i, d in enumerate(drops)],
                    "dedup+redact shards")
    (run.curated / "_work").rmdir()  # each shard removed its own scratch file

    steps = {
        "filter": StageStats.total(r["stats"] for r in first),
        "exact_dedup": StageStats.total(r["stats"] for r in second),
    }
    total = combine_steps(steps).to_dict()
    malformed = [e for r in first for e in r["malformed_examples"]][:20]
    summary = {
        "input": source,
        "input_files": len(files),
        "skipped_files": [str(p) for p in skipped],
        "totals": total,
        "steps": {name: s.to_dict() for name, s in steps.items()},
        "malformed_examples": malformed,
        "output_shards": len(files),
    }
    write_json(run.curation_stats, summary)
    create_table_artifact(key="curation-stats", table=stats_table(total),
                          description=f"Curation of {source}: documents in = kept + removed by reason")
    if malformed:
        log.warning("%d malformed record(s) quarantined in %s, e.g. %s",
                    total["removed_by_reason"]["malformed"]["docs"], run.removed, malformed[0])
    return summary


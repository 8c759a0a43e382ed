"""The `curate` flow: raw documents in, curated Parquet shards, removed/ shards and stats out.

Steps (each a set of Ray tasks): [plant noise] -> [train quality model] -> [decontamination
index] -> filter each input file -> exact/near-exact dedup per key range -> MinHash buckets
per key range -> connected components (rounds) -> [repeated spans per shard group] -> finalize
each shard (dedup, span cuts, PII redaction).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.placement import task_nodes
from flows.progress import gather
from infra.core.storage import RunDir, read_json, write_json
from infra.core.task_markers import discard_work, prepare_work
from tasks.curation.config import CurationConfig
from tasks.curation.output_files import CurationPaths
from tasks.curation.prefect_tasks import (
    component_drops_task,
    decontam_task,
    exact_task,
    filter_task,
    finalize_task,
    lsh_task,
    noise_task,
    quality_model_task,
    reference_task,
    stage_source,
    star_task,
    substring_task,
)
from tasks.curation.reader import discover_inputs, input_fingerprint, inputs_fingerprint
from tasks.curation.stats import StageStats, combine_steps
from tasks.curation.substring_dedup import groups

log = logging.getLogger(__name__)
MAX_COMPONENT_ROUNDS = 64


def stats_table(steps: dict[str, dict[str, Any]], total: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per step and outcome, so the Prefect UI shows where every document went."""
    rows = [{"step": "all", "outcome": "in", "docs": total["docs_in"], "bytes": total["bytes_in"]}]
    for name, s in steps.items():  # in pipeline order
        rows.append({"step": name, "outcome": "in", "docs": s["docs_in"], "bytes": s["bytes_in"]})
        rows += [{"step": name, "outcome": f"removed: {r}", **v} for r, v in s["removed_by_reason"].items()]
        rows += [{"step": name, "outcome": f"changed: {k}", "docs": n, "bytes": ""} for k, n in s["changes"].items()]
        rows += [
            {"step": name, "outcome": f"redacted: {k}", "docs": n, "bytes": ""} for k, n in s["redactions"].items()
        ]
        rows.append({"step": name, "outcome": "kept", "docs": s["docs_kept"], "bytes": s["bytes_kept"]})
    rows.append({"step": "all", "outcome": "kept", "docs": total["docs_kept"], "bytes": total["bytes_kept"]})
    return rows


def _fingerprint(cfg: CurationConfig, files: list[Path]) -> dict[str, Any]:
    return {"config": json.loads(cfg.model_dump_json()), "inputs": inputs_fingerprint(files)}


def _components(parts: int, curated: str) -> tuple[int, int, list[dict[str, Any]]]:
    """Alternate large/small-star rounds until a round changes nothing; returns (round,
    rounds, every star task's result)."""
    rnd, previous, done = 0, None, []
    for it in range(MAX_COMPONENT_ROUNDS):
        large = gather(
            [star_task.submit("large", rnd, q, parts, curated) for q in range(parts)],
            f"components round {it + 1} (large-star)",
        )
        done += large + gather(
            [star_task.submit("small", rnd + 1, q, parts, curated) for q in range(parts)],
            f"components round {it + 1} (small-star)",
        )
        state = (sum(s["edges"] for s in large), sum(s["checksum"] for s in large) % 2**64)
        rnd += 2
        if state == previous:
            return rnd, it + 1, done
        previous = state
    raise RuntimeError(f"connected components did not converge in {MAX_COMPONENT_ROUNDS} rounds")


def _history(previous_run: Path) -> tuple[dict[str, list[int]], list[str]]:
    """What an earlier run curated: the input files it had seen (path -> [size, mtime]) and
    the curated shards of it and of the runs before it, which new documents are deduplicated against."""
    stats = RunDir(previous_run).curation_stats
    if not stats.is_file():
        raise FileNotFoundError(
            f"previous run {previous_run} has no finished curation ({stats} is missing); "
            f"point previous_run at a finished run, or turn curation.incremental off"
        )
    prior = read_json(stats)
    references = [r for r in prior.get("dedup_references", []) + prior.get("output_files", []) if Path(r).is_file()]
    lost = len(prior.get("dedup_references", [])) + len(prior.get("output_files", [])) - len(references)
    if lost:
        log.warning(
            "%d curated shard(s) of earlier runs are gone: new documents are not deduplicated against them", lost
        )
    return prior.get("inputs_seen", {}), references


@flow(name="curate", task_runner=RayTaskRunner())
def curate_flow(cfg: CurationConfig, run_dir: str, previous_run: str | None = None) -> dict[str, Any]:
    """Curate the input. With `cfg.incremental` and a previous run, only the input files that
    are new or changed since it are curated, and deduplicated against everything it had curated."""
    run = RunDir(Path(run_dir))
    paths = CurationPaths(run.curated.resolve())
    curated = str(paths.curated)
    source = stage_source(cfg.input_path)
    files, skipped = discover_inputs(source)
    if skipped:
        log.warning(
            "ignoring %d file(s) that are not JSONL/Parquet/WARC/HTML under %s, e.g. %s",
            len(skipped),
            source,
            skipped[0],
        )
    seen = {str(f.resolve()): input_fingerprint(f) for f in files}
    seen_before, references = _history(Path(previous_run)) if cfg.incremental and previous_run else ({}, [])
    if cfg.incremental:
        files = [f for f in files if seen_before.get(str(f.resolve())) != seen[str(f.resolve())]]
        log.info(
            "incremental curation after %s: %d new or changed input file(s), %d unchanged; deduplicating "
            "against %d curated shard(s) of earlier runs",
            previous_run or "no previous run",
            len(files),
            len(seen) - len(files),
            len(references),
        )
    prepare_work(paths.work, {**_fingerprint(cfg, files), "references": references}, paths.work / "markers")
    extra: dict[str, Any] = {}

    stage_input = source
    if cfg.noise is not None:
        extra["noise"] = noise_task(source, cfg, curated)
        stage_input = extra["noise"]["input"]
        files, _ = discover_inputs(stage_input)
    quality_model = decontam_index = None
    qc = cfg.quality_classifier
    if qc.enabled:
        if qc.model_path:
            quality_model = str(Path(qc.model_path).resolve())
        else:
            extra["quality_model"] = quality_model_task(source, cfg, curated)
            quality_model = extra["quality_model"]["model"]
    if cfg.decontamination.enabled:
        extra["decontamination"] = decontam_task(cfg, curated)
        decontam_index = extra["decontamination"]["index"]
    log.info("curating %d input file(s) from %s", len(files), stage_input)

    # Earlier runs' shards come first (indices 0..m-1): dedup keeps the first document of a
    # group, so a new document that repeats one of theirs is the one removed.
    against = references if files else []  # nothing new: nothing to deduplicate against them
    m = len(against)
    ref = gather([reference_task.submit(r, i, cfg, curated) for i, r in enumerate(against)], "earlier runs' shards")
    # Resolved: errors and removed/ rows name the user's file, not the noise step's link to it.
    first = gather(
        [
            filter_task.submit(str(f.resolve()), m + i, cfg, curated, quality_model, decontam_index)
            for i, f in enumerate(files)
        ],
        "filter shards",
    )
    survivors = sum(r["kept"] for r in first) + sum(r["docs"] for r in ref)
    parts = max(1, math.ceil(survivors / cfg.partition_docs))
    shards = m + len(files)
    exact_parts = minhash_parts = 0
    exact: list[dict[str, Any]] = []
    lsh: list[dict[str, Any]] = []
    stars: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    if cfg.exact_dedup.enabled and files:
        exact = gather([exact_task.submit(p, parts, shards, curated) for p in range(parts)], "exact dedup")
        extra["exact_dedup"] = {
            "exact": sum(r["exact"] for r in exact),
            "near_exact": sum(r["near_exact"] for r in exact),
        }
        exact_parts = parts
    if cfg.minhash.enabled and files:
        lsh = gather([lsh_task.submit(p, parts, shards, cfg, curated) for p in range(parts)], "minhash buckets")
        final_round, rounds, stars = _components(parts, curated)
        dropped = gather(
            [component_drops_task.submit(final_round, q, curated) for q in range(parts)], "minhash clusters"
        )
        extra["minhash"] = {
            "candidate_pairs": sum(r["candidate_pairs"] for r in lsh),
            "verified_pairs": sum(r["verified_pairs"] for r in lsh),
            "component_rounds": rounds,
            "dropped": sum(r["dropped"] for r in dropped),
        }
        minhash_parts = parts
    sub: list[dict[str, Any]] = []
    if cfg.substring_dedup.enabled and files:
        sizes = [r["stats"]["bytes_kept"] for r in first]  # this run's shards, m..shards-1
        grouped = [[m + i for i in g] for g in groups(sizes, cfg.substring_dedup.max_group_mb << 20)]
        sub = gather(
            [
                substring_task.submit(g, shard_group, cfg, curated, exact_parts, minhash_parts)
                for g, shard_group in enumerate(grouped)
            ],
            "substring dedup",
        )
        extra["substring_dedup"] = {
            "groups": len(sub),
            **{k: sum(r[k] for r in sub) for k in ("documents", "tokens", "text_bytes", "spans", "tokens_cut")},
            "seconds": round(sum(r["seconds"] for r in sub), 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in sub),
        }
    second = gather(
        [finalize_task.submit(i, cfg, curated, exact_parts, minhash_parts, m) for i in range(m, shards)],
        "dedup+redact shards",
    )
    if cfg.incremental:
        extra["incremental"] = {
            "previous_run": previous_run,
            "new_or_changed_files": len(files),
            "unchanged_files": len(seen) - len(files),
            "reference_shards": m,
            "reference_docs": sum(r["docs"] for r in ref),
        }

    results = first + second + exact + lsh + dropped + sub
    singles = {
        name: [extra[name]]
        for name in ("noise", "quality_model", "decontamination")
        if isinstance(extra.get(name), dict) and "node" in extra[name]
    }
    placement = task_nodes(
        {
            **singles,
            "reference": ref,
            "filter": first,
            "exact-dedup": exact,
            "minhash-buckets": lsh,
            "components": stars,
            "minhash-clusters": dropped,
            "substring-dedup": sub,
            "finalize": second,
        }
    )
    steps = {
        "filter": StageStats.total(r["stats"] for r in first),
        "dedup_redact": StageStats.total(r["stats"] for r in second),
    }
    total = combine_steps(steps).to_dict()
    malformed = [e for r in first for e in r["malformed_examples"]][:20]
    languages = sum((Counter(r.get("languages", {})) for r in first), Counter())
    if languages:  # web input: the languages its pages were identified as, before the filter kept some
        extra["languages"] = dict(languages.most_common())
    summary = {
        "input": source,
        "input_files": len(files),
        "skipped_files": [str(p) for p in skipped],
        "totals": total,
        "steps": {name: s.to_dict() for name, s in steps.items()},
        "details": extra,
        "partitions": parts,
        "peak_worker_rss_mb": max((r.get("peak_rss_mb", 0) for r in results), default=0),
        "malformed_examples": malformed,
        "nodes": placement,  # which cluster node ran each task
        "output_shards": len(files),
        "output_files": [str(paths.kept(i)) for i in range(m, shards)],
        # For a later incremental run: every input file seen so far, and every earlier curated shard.
        "inputs_seen": {**seen_before, **seen},
        "dedup_references": references,
    }
    write_json(run.curation_stats, summary)
    discard_work(paths.work)  # scratch only; the markers' results are in stats.json now
    create_table_artifact(
        key="curation-stats",
        table=stats_table(summary["steps"], total),
        description=f"Curation of {source}: documents in = kept + removed by reason, per step",
    )
    if malformed:
        log.warning(
            "%d malformed record(s) quarantined in %s, e.g. %s",
            total["removed_by_reason"]["malformed"]["docs"],
            run.removed,
            malformed[0],
        )
    return summary

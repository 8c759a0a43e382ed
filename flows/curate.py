"""The `curate` flow: raw documents in, curated Parquet shards, removed/ shards and stats out.

Steps (each a set of Ray tasks): [plant noise] -> [train quality model] -> [decontamination
index] -> filter each input file -> the global steps of GLOBAL_STEPS, each switched by its
config section: exact/near-exact dedup per key range, MinHash buckets per key range, each
candidate pair verified once, connected components (rounds), repeated spans per shard group
-> finalize each shard (dedup, span cuts, PII redaction). With `curation.incremental`, only
new or changed input files are curated, deduplicated against earlier runs' curated shards.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.placement import task_nodes
from flows.progress import gather
from infra.core.storage import RunDir, read_json, write_json
from infra.core.task_markers import discard_work, prepare_work
from tasks.curation.components import run_rounds
from tasks.curation.config import CurationConfig
from tasks.curation.minhash import KEY_SCHEME
from tasks.curation.near_dedup import BUCKET_COUNTS, VERIFY_COUNTS
from tasks.curation.output_files import SCRATCH_LAYOUT, CurationPaths, scratch_usage
from tasks.curation.prefect_tasks import (
    component_drops_task,
    components_one_task,
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
    verify_task,
)
from tasks.curation.reader import discover_inputs, input_fingerprint, inputs_fingerprint
from tasks.curation.stats import StageStats, combine_steps
from tasks.curation.substring_dedup import groups

log = logging.getLogger(__name__)
MAX_COMPONENT_ROUNDS = 64
# The flow's task groups, in pipeline order: the stats' `nodes` list their tasks in it.
TASK_GROUPS = (
    "reference",
    "filter",
    "exact-dedup",
    "minhash-buckets",
    "minhash-verify",
    "components",
    "minhash-clusters",
    "substring-dedup",
    "finalize",
)
# The groups peak_worker_rss_mb has always been taken over (not the reference or components
# tasks), so that the figure stays comparable with earlier runs' stats.
RSS_GROUPS = (
    "filter",
    "finalize",
    "exact-dedup",
    "minhash-buckets",
    "minhash-verify",
    "minhash-clusters",
    "substring-dedup",
)


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
    """What the scratch files depend on: a change discards them. The key scheme and scratch
    layout are in it so that a run interrupted under an older Crucible restarts its scratch
    rather than mixing its keys with new ones."""
    return {
        "config": json.loads(cfg.model_dump_json()),
        "inputs": inputs_fingerprint(files),
        "key_scheme": KEY_SCHEME,
        "scratch_layout": SCRATCH_LAYOUT,
    }


def _components(parts: int, curated: str) -> tuple[int, int, list[dict[str, Any]]]:
    """Alternate large/small-star rounds until a round changes nothing; returns (round,
    rounds, every star task's result)."""

    def step(kind: str, rnd: int) -> list[dict[str, Any]]:
        return gather(
            [star_task.submit(kind, rnd, q, parts, curated) for q in range(parts)],
            f"components round {rnd // 2 + 1} ({kind}-star)",
        )

    return run_rounds(step, MAX_COMPONENT_ROUNDS)


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


@dataclass
class _Inputs:
    """The input files this run curates, and what the runs before it curated (incremental)."""

    source: str
    files: list[Path]
    skipped: list[Path]  # found but not a format the reader takes
    seen: dict[str, list[int]]  # every input file found now: path -> [size, mtime]
    seen_before: dict[str, list[int]]  # the same, as the previous run recorded it
    references: list[str]  # earlier runs' curated shards, which new documents are deduplicated against


def _select_inputs(cfg: CurationConfig, previous_run: str | None) -> _Inputs:
    """The input files to curate: all of them, or with `cfg.incremental` those that are new or
    changed since `previous_run`."""
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
    return _Inputs(source, files, skipped, seen, seen_before, references)


@dataclass
class _Work:
    """What the flow's steps share: each reads what the steps before it left here and adds
    its task results (`tasks`, by group) and its part of stats.json's `details`."""

    cfg: CurationConfig
    curated: str
    files: list[Path]
    details: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {g: [] for g in TASK_GROUPS})
    earlier: int = 0  # earlier runs' shards, indices 0..earlier-1; this run's follow them
    parts: int = 1  # key ranges of the global steps
    slots: int = 1  # tasks per global step at most (curation.dedup_tasks): each owns a share of its ranges
    exact_parts: int = 0  # 0: exact dedup did not run (finalize and substring dedup read no drops)
    minhash_parts: int = 0

    @property
    def shards(self) -> int:
        return self.earlier + len(self.files)


def _before_filtering(work: _Work, source: str) -> tuple[str | None, str | None]:
    """The steps the filter pass needs first: [plant noise], [train the quality model],
    [build the decontamination index]. Returns the model's and the index's paths (None: off)."""
    cfg, details = work.cfg, work.details
    stage_input = source
    if cfg.noise is not None:
        details["noise"] = noise_task(source, cfg, work.curated)
        stage_input = details["noise"]["input"]
        work.files, _ = discover_inputs(stage_input)
    quality_model = decontam_index = None
    qc = cfg.quality_classifier
    if qc.enabled:
        if qc.model_path:
            quality_model = str(Path(qc.model_path).resolve())
        else:
            details["quality_model"] = quality_model_task(source, cfg, work.curated)
            quality_model = details["quality_model"]["model"]
    if cfg.decontamination.enabled:
        details["decontamination"] = decontam_task(cfg, work.curated)
        decontam_index = details["decontamination"]["index"]
    log.info("curating %d input file(s) from %s", len(work.files), stage_input)
    return quality_model, decontam_index


def _filter(work: _Work, references: list[str], quality_model: str | None, decontam_index: str | None) -> None:
    """Key earlier runs' shards, filter this run's input files; sizes the global steps."""
    cfg, curated = work.cfg, work.curated
    # Earlier runs' shards come first (indices 0..m-1): dedup keeps the first document of a
    # group, so a new document that repeats one of theirs is the one removed.
    against = references if work.files else []  # nothing new: nothing to deduplicate against them
    work.earlier = m = len(against)
    ref = gather([reference_task.submit(r, i, cfg, curated) for i, r in enumerate(against)], "earlier runs' shards")
    # Resolved: errors and removed/ rows name the user's file, not the noise step's link to it.
    first = gather(
        [
            filter_task.submit(str(f.resolve()), m + i, cfg, curated, quality_model, decontam_index)
            for i, f in enumerate(work.files)
        ],
        "filter shards",
    )
    work.tasks.update({"reference": ref, "filter": first})
    survivors = sum(r["kept"] for r in first) + sum(r["docs"] for r in ref)
    work.parts = max(1, math.ceil(survivors / cfg.partition_docs))
    work.slots = cfg.dedup_tasks or 2 * _cluster_cpus()


def _cluster_cpus() -> int:
    """The Ray cluster's CPUs (the flow's task runner has connected to it)."""
    import ray  # only a curate flow asks, and its runner has started Ray already

    return max(1, int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else os.cpu_count() or 1)


def _exact_dedup(work: _Work) -> None:
    parts, tasks = work.parts, min(work.parts, work.slots)
    exact = gather([exact_task.submit(t, tasks, parts, work.shards, work.curated) for t in range(tasks)], "exact dedup")
    work.tasks["exact-dedup"] = exact
    work.details["exact_dedup"] = {
        "tasks": tasks,
        **{k: sum(r[k] for r in exact) for k in ("exact", "near_exact", "files_opened")},
    }
    work.exact_parts = parts


def _near_dedup(work: _Work) -> None:
    parts, curated, tasks = work.parts, work.curated, min(work.parts, work.slots)
    lsh = gather(
        [lsh_task.submit(t, tasks, parts, work.shards, work.cfg, curated) for t in range(tasks)], "minhash buckets"
    )
    verified = gather(
        [verify_task.submit(t, tasks, parts, work.cfg, curated) for t in range(tasks)], "minhash verification"
    )
    stars: list[dict[str, Any]] = []
    if parts == 1:  # one partition: rounds and drops in one task
        dropped = gather([components_one_task.submit(curated)], "minhash clusters")
        rounds = dropped[0]["component_rounds"]
    else:
        final_round, rounds, stars = _components(parts, curated)
        dropped = gather(
            [component_drops_task.submit(final_round, q, curated) for q in range(parts)], "minhash clusters"
        )
    work.tasks.update(
        {"minhash-buckets": lsh, "minhash-verify": verified, "components": stars, "minhash-clusters": dropped}
    )
    work.details["minhash"] = {
        "tasks": tasks,
        **{k: sum(r[k] for r in lsh) for k in BUCKET_COUNTS},
        **{k: sum(r[k] for r in verified) for k in VERIFY_COUNTS},
        "files_opened": sum(r["files_opened"] for r in lsh + verified),
        "component_rounds": rounds,
        "dropped": sum(r["dropped"] for r in dropped),
    }
    work.minhash_parts = parts


def _substring_dedup(work: _Work) -> None:
    cfg, m = work.cfg, work.earlier
    sizes = [r["stats"]["bytes_kept"] for r in work.tasks["filter"]]  # this run's shards, m..shards-1
    grouped = [[m + i for i in g] for g in groups(sizes, cfg.substring_dedup.max_group_mb << 20)]
    sub = gather(
        [
            substring_task.submit(g, shard_group, cfg, work.curated, work.exact_parts, work.minhash_parts)
            for g, shard_group in enumerate(grouped)
        ],
        "substring dedup",
    )
    work.tasks["substring-dedup"] = sub
    work.details["substring_dedup"] = {
        "groups": len(sub),
        **{k: sum(r[k] for r in sub) for k in ("documents", "tokens", "text_bytes", "spans", "tokens_cut")},
        "seconds": round(sum(r["seconds"] for r in sub), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in sub),
    }


# The steps over the whole corpus, between the filter pass and finalize, in the order they
# run: each is named by the config section whose `enabled` switches it. Order matters:
# substring dedup reads what the dedup steps before it dropped.
GLOBAL_STEPS: tuple[tuple[str, Callable[[_Work], None]], ...] = (
    ("exact_dedup", _exact_dedup),
    ("minhash", _near_dedup),
    ("substring_dedup", _substring_dedup),
)


def _finalize(work: _Work) -> None:
    cfg, curated, shards = work.cfg, work.curated, range(work.earlier, work.shards)
    tasks = max(1, min(len(shards), work.slots))
    per_task = gather(
        [
            finalize_task.submit(t, tasks, shards, cfg, curated, work.exact_parts, work.minhash_parts)
            for t in range(tasks)
        ],
        "dedup+redact shards",
    )
    work.tasks["finalize"] = [shard for results in per_task for shard in results]


def _incremental_details(work: _Work, inputs: _Inputs, previous_run: str | None) -> dict[str, Any]:
    return {
        "previous_run": previous_run,
        "new_or_changed_files": len(work.files),
        "unchanged_files": len(inputs.seen) - len(work.files),
        "reference_shards": work.earlier,
        "reference_docs": sum(r["docs"] for r in work.tasks["reference"]),
    }


def _summary(work: _Work, inputs: _Inputs, paths: CurationPaths) -> dict[str, Any]:
    """stats.json: the counts per step and in total, each step's details, where tasks ran, and
    what a later incremental run needs."""
    first, details = work.tasks["filter"], work.details
    singles = {
        name: [details[name]]
        for name in ("noise", "quality_model", "decontamination")
        if isinstance(details.get(name), dict) and "node" in details[name]
    }
    steps = {
        "filter": StageStats.total(r["stats"] for r in first),
        "dedup_redact": StageStats.total(r["stats"] for r in work.tasks["finalize"]),
    }
    languages = sum((Counter(r.get("languages", {})) for r in first), Counter())
    if languages:  # web input: the languages its pages were identified as, before the filter kept some
        details["languages"] = dict(languages.most_common())
    rss = (r.get("peak_rss_mb", 0) for g in RSS_GROUPS for r in work.tasks[g])
    details["finalize"] = {
        "tasks": max(1, min(len(work.files), work.slots)),
        **{k: sum(r.get(k, 0) for r in work.tasks["finalize"]) for k in ("id_rows_read", "files_opened")},
    }
    details["scratch"] = scratch_usage(paths.work)
    return {
        "input": inputs.source,
        "input_files": len(work.files),
        "skipped_files": [str(p) for p in inputs.skipped],
        "totals": combine_steps(steps).to_dict(),
        "steps": {name: s.to_dict() for name, s in steps.items()},
        "details": details,
        "partitions": work.parts,
        "peak_worker_rss_mb": max(rss, default=0),
        "malformed_examples": [e for r in first for e in r["malformed_examples"]][:20],
        "nodes": task_nodes({**singles, **work.tasks}),  # which cluster node ran each task
        "output_shards": len(work.files),
        "output_files": [str(paths.kept(i)) for i in range(work.earlier, work.shards)],
        # For a later incremental run: every input file seen so far, and every earlier curated shard.
        "inputs_seen": {**inputs.seen_before, **inputs.seen},
        "dedup_references": inputs.references,
    }


def _publish(run: RunDir, paths: CurationPaths, summary: dict[str, Any]) -> None:
    """Write stats.json, drop the scratch files, show the counts in the Prefect UI."""
    write_json(run.curation_stats, summary)
    discard_work(paths.work)  # scratch only; the markers' results are in stats.json now
    total = summary["totals"]
    create_table_artifact(
        key="curation-stats",
        table=stats_table(summary["steps"], total),
        description=f"Curation of {summary['input']}: documents in = kept + removed by reason, per step",
    )
    if malformed := summary["malformed_examples"]:
        log.warning(
            "%d malformed record(s) quarantined in %s, e.g. %s",
            total["removed_by_reason"]["malformed"]["docs"],
            run.removed,
            malformed[0],
        )


@flow(name="curate", task_runner=RayTaskRunner())
def curate_flow(cfg: CurationConfig, run_dir: str, previous_run: str | None = None) -> dict[str, Any]:
    """Curate the input. With `cfg.incremental` and a previous run, only the input files that
    are new or changed since it are curated, and deduplicated against everything it had curated."""
    run = RunDir(Path(run_dir))
    paths = CurationPaths(run.curated.resolve())
    inputs = _select_inputs(cfg, previous_run)
    fingerprint = {**_fingerprint(cfg, inputs.files), "references": inputs.references}
    prepare_work(paths.work, fingerprint, paths.work / "markers")
    work = _Work(cfg, str(paths.curated), inputs.files)
    quality_model, decontam_index = _before_filtering(work, inputs.source)
    _filter(work, inputs.references, quality_model, decontam_index)
    for section, step in GLOBAL_STEPS:
        if getattr(cfg, section).enabled and work.files:
            step(work)
    _finalize(work)
    if cfg.incremental:
        work.details["incremental"] = _incremental_details(work, inputs, previous_run)
    summary = _summary(work, inputs, paths)
    _publish(run, paths, summary)
    return summary

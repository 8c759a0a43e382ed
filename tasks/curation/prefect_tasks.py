"""Thin Prefect task wrappers around the curation work; they run on Ray workers.

Each task records its result in a completion marker after its outputs are in place
(outputs are written atomically first), so a re-run of the stage skips finished tasks
and a retried task never sees half a file.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

from prefect import task

from infra.core.task_markers import once
from tasks.corpus.builtin import builtin_corpus
from tasks.curation import components
from tasks.curation.config import CurationConfig
from tasks.curation.dedup import exact_ranges
from tasks.curation.filter_pass import filter_shard, reference_shard
from tasks.curation.finalize import drop_files, finalize_shard, substring_group
from tasks.curation.keyed_files import KeyFiles, owned_ranges
from tasks.curation.near_dedup import bucket_ranges, verify_ranges
from tasks.curation.output_files import CurationPaths
from tasks.curation.ragged_files import RaggedFiles
from tasks.curation.training_sets import build_decontam_index, build_noisy_input, train_quality
from tasks.transient import retry_transient


def stage_source(input_path: str) -> str:
    """The folder or file the stage reads: a built-in corpus by name (built by a task of its
    own, so the UI shows the build), or the user's path."""
    if (corpus := builtin_corpus(input_path)) is None:
        return str(Path(input_path).resolve())
    return task(name=corpus.task_name)(lambda: str(corpus.build()))()


class _Retry(TypedDict):
    retries: int
    retry_condition_fn: Callable[[Any, Any, Any], bool]


# Retries cover a worker lost mid-task; outputs are atomic, so a retry starts clean.
RETRY: _Retry = {"retries": 2, "retry_condition_fn": retry_transient}


@task(name="inject-noise", **RETRY)
def noise_task(source: str, cfg: CurationConfig, curated: str) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(paths.marker("noise"), lambda: build_noisy_input(Path(source), cfg, paths))


@task(name="train-quality-model", **RETRY)
def quality_model_task(source: str, cfg: CurationConfig, curated: str) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(paths.marker("quality-model"), lambda: train_quality(Path(source), cfg, paths))


@task(name="build-decontamination-index", **RETRY)
def decontam_task(cfg: CurationConfig, curated: str) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(paths.marker("decontam-index"), lambda: build_decontam_index(cfg, paths))


@task(name="reference-shard", task_run_name="reference-{index}", **RETRY)
def reference_task(path: str, index: int, cfg: CurationConfig, curated: str) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(paths.marker("reference", index), lambda: reference_shard(Path(path), index, cfg, Path(curated)))


@task(name="filter-shard", task_run_name="filter-{index}", **RETRY)
def filter_task(
    path: str, index: int, cfg: CurationConfig, curated: str, quality_model: str | None, decontam_index: str | None
) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(
        paths.marker("filter", index),
        lambda: filter_shard(
            Path(path),
            index,
            cfg,
            Path(curated),
            Path(quality_model) if quality_model else None,
            Path(decontam_index) if decontam_index else None,
        ),
    )


@task(name="exact-dedup", task_run_name="exact-dedup-{task_index}", **RETRY)
def exact_task(task_index: int, tasks: int, parts: int, shards: int, curated: str) -> dict[str, Any]:
    """Exact / near-exact drops for the key ranges this task owns (owned_ranges)."""
    paths = CurationPaths(Path(curated))
    ranges = owned_ranges(task_index, tasks, parts)
    return once(
        paths.marker("exact", task_index),
        lambda: exact_ranges(KeyFiles([paths.keys(i) for i in range(shards)]), ranges, parts, paths.exact_drops),
    )


@task(name="minhash-buckets", task_run_name="minhash-buckets-{task_index}", **RETRY)
def lsh_task(task_index: int, tasks: int, parts: int, shards: int, cfg: CurationConfig, curated: str) -> dict[str, Any]:
    """Verified candidate pairs from every band's key ranges this task owns, sent to the components step."""
    paths = CurationPaths(Path(curated))
    ranges = owned_ranges(task_index, tasks, parts)
    exact = cfg.exact_dedup.enabled
    return once(
        paths.marker("lsh", task_index), lambda: bucket_ranges(paths, shards, ranges, parts, cfg.minhash, exact)
    )


@task(name="minhash-verify", task_run_name="minhash-verify-{task_index}", **RETRY)
def verify_task(task_index: int, tasks: int, parts: int, cfg: CurationConfig, curated: str) -> dict[str, Any]:
    """Each candidate pair of the partitions this task owns checked once by exact Jaccard."""
    paths = CurationPaths(Path(curated))
    ranges = owned_ranges(task_index, tasks, parts)
    return once(paths.marker("verify", task_index), lambda: verify_ranges(paths, ranges, parts, cfg.minhash))


@task(name="components-step", task_run_name="{kind}-star-r{rnd}-{part}", **RETRY)
def star_task(kind: str, rnd: int, part: int, parts: int, curated: str) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(
        paths.marker(f"cc-{kind}-r{rnd:03d}", part),
        lambda: components.star_step(kind, paths.components, rnd, part, parts),
    )


@task(name="components-drops", task_run_name="components-drops-{part}", **RETRY)
def component_drops_task(rnd: int, part: int, curated: str) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(
        paths.marker("cc-drops", part),
        lambda: components.component_drops(paths.components, rnd, part, paths.minhash_drops(part)),
    )


@task(name="components", task_run_name="components", **RETRY)
def components_one_task(curated: str) -> dict[str, Any]:
    """Connected components of a one-partition graph, start to finish, in one task."""
    paths = CurationPaths(Path(curated))
    return once(paths.marker("cc-one"), lambda: components.components_in_one(paths.components, paths.minhash_drops(0)))


@task(name="substring-dedup", task_run_name="substring-dedup-{group}", **RETRY)
def substring_task(
    group: int, shards: list[int], cfg: CurationConfig, curated: str, exact_parts: int, minhash_parts: int
) -> dict[str, Any]:
    paths = CurationPaths(Path(curated))
    return once(
        paths.marker("substring", group),
        lambda: substring_group(shards, cfg, Path(curated), exact_parts, minhash_parts),
    )


@task(name="finalize-shards", task_run_name="finalize-{task_index}", **RETRY)
def finalize_task(
    task_index: int, tasks: int, shards: range, cfg: CurationConfig, curated: str, exact_parts: int, minhash_parts: int
) -> list[dict[str, Any]]:
    """Finalize this task's share of `shards` one after the other, the drop files opened once
    for all of them. Each shard keeps its own marker: a retried task redoes only the shards it
    had not finished. Shards before shards.start hold earlier runs' documents."""
    paths = CurationPaths(Path(curated))
    drops, ids = drop_files(paths, exact_parts, minhash_parts), RaggedFiles(paths.doc_ids)
    finish = partial(finalize_shard, cfg=cfg, curated_dir=Path(curated), drop_files=drops, references=shards.start)
    return [once(paths.marker("finalize", i), partial(finish, i, ids=ids)) for i in shards[task_index::tasks]]

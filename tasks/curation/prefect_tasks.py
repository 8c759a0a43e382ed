"""Thin Prefect task wrappers around the curation work; they run on Ray workers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks.corpus.demo import build_demo_corpus
from tasks.curation.config import CurationConfig
from tasks.curation.reader import InputError
from tasks.curation.shard import filter_shard, finalize_shard


@task(name="build-demo-corpus")
def demo_corpus_task() -> str:
    return str(build_demo_corpus())


def _transient(task, task_run, state) -> bool:
    """Retry lost workers and I/O hiccups, not input that will fail the same way again."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


# Retries cover a worker lost mid-shard; outputs are atomic, so a retry starts clean.
@task(name="filter-shard", retries=1, retry_condition_fn=_transient, task_run_name="filter-{index}")
def filter_shard_task(path: str, index: int, cfg: CurationConfig, curated_dir: str) -> dict[str, Any]:
    return filter_shard(Path(path), index, cfg, Path(curated_dir))


@task(name="finalize-shard", retries=1, retry_condition_fn=_transient, task_run_name="finalize-{index}")
def finalize_shard_task(index: int, drop_rows: list[int], cfg: CurationConfig, curated_dir: str) -> dict[str, Any]:
    return finalize_shard(index, drop_rows, cfg, Path(curated_dir))

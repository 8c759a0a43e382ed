"""Thin Prefect task wrappers around tokenization; shard tokenization runs on Ray workers.

Each task records its result in a marker after its files are in place, so a re-run skips
finished shards; a marker whose files are missing or altered is ignored and the shard rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import task

from infra.core.storage import sha256_file
from infra.core.task_markers import once
from tasks.tokenization.bpe import prepare_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.shards import tokenize_shard
from tasks.transient import retry_transient


def marker(shard_dir: Path, name: str) -> Path:
    return shard_dir / "_markers" / f"{name}.json"


def _files_intact(shard_dir: Path, result: dict[str, Any]) -> bool:
    for e in result["entries"]:
        path = shard_dir / e["file"]
        if not path.is_file() or path.stat().st_size != e["bytes"] or sha256_file(path) != e["sha256"]:
            return False
    return True


@task(name="prepare-tokenizer", retries=2, retry_condition_fn=retry_transient)
def prepare_tokenizer_task(curated: list[str], cfg: TokenizationConfig, dest: str, shard_dir: str) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        tok = prepare_tokenizer([Path(s) for s in curated], cfg, Path(dest))
        return {"vocab_size": tok.get_vocab_size(), "sha256": sha256_file(Path(dest))}

    return once(
        marker(Path(shard_dir), "tokenizer"),
        work,
        lambda r: Path(dest).is_file() and sha256_file(Path(dest)) == r["sha256"],
    )


@task(name="tokenize-shard", retries=2, retry_condition_fn=retry_transient, task_run_name="tokenize-{index}")
def tokenize_shard_task(
    curated: str, index: int, tokenizer: str, cfg: TokenizationConfig, shard_dir: str
) -> dict[str, Any]:
    # One Ray CPU per task: the tokenizer's own thread pool would only oversubscribe it.
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    out = Path(shard_dir)
    return once(
        marker(out, f"tokenize-{index:05d}"),
        lambda: {"entries": tokenize_shard(Path(curated), index, Path(tokenizer), cfg, out)},
        lambda r: _files_intact(out, r),
    )

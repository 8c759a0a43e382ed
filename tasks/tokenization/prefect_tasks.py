"""Thin Prefect task wrappers around tokenization; shard tokenization runs on Ray workers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks.tokenization.bpe import train_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.shards import tokenize_shard


@task(name="train-tokenizer")
def train_tokenizer_task(shards: list[str], cfg: TokenizationConfig, dest: str) -> int:
    return train_tokenizer([Path(s) for s in shards], cfg, Path(dest)).get_vocab_size()


@task(name="tokenize-shard", retries=1, task_run_name="tokenize-{index}")
def tokenize_shard_task(curated: str, index: int, tokenizer: str, cfg: TokenizationConfig,
                        out_dir: str) -> list[dict[str, Any]]:
    return tokenize_shard(Path(curated), index, Path(tokenizer), cfg, Path(out_dir))

"""The `tokenize` flow: train a BPE on the curated text, then pack token shards on Ray."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.progress import gather
from infra.storage import RunDir, write_json
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.prefect_tasks import tokenize_shard_task, train_tokenizer_task
from tasks.tokenization.shards import build_manifest

log = logging.getLogger(__name__)


@flow(name="tokenize", task_runner=RayTaskRunner())
def tokenize_flow(cfg: TokenizationConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir).resolve())
    curated = sorted(run.curated.glob("part-*.parquet"))
    if not curated:
        raise FileNotFoundError(
            f"no curated shards in {run.curated}; run `crucible curate` for this run first"
        )
    vocab = train_tokenizer_task([str(p) for p in curated], cfg, str(run.tokenizer))
    futures = [tokenize_shard_task.submit(str(p), i, str(run.tokenizer), cfg, str(run.shards))
               for i, p in enumerate(curated)]
    entries = [e for part in gather(futures, "tokenize shards") for e in part]
    manifest = build_manifest(entries, run.tokenizer, cfg)
    write_json(run.manifest, manifest)
    create_table_artifact(
        key="tokenization-stats",
        table=[{"split": s, **t} for s, t in manifest["splits"].items()],
        description=f"BPE vocabulary {vocab}, sequences of {cfg.seq_len} tokens",
    )
    log.info("token shards: %s", {s: t["tokens"] for s, t in manifest["splits"].items()})
    return {"vocab_size": vocab, "splits": manifest["splits"]}

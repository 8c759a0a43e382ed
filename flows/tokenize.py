"""The `tokenize` flow: train (or reuse) a BPE, pack token shards on Ray, write the manifest.

Re-running it skips the tokenizer and the shards already finished from the same curated
data and settings; anything made from other data or settings is discarded first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect_ray import RayTaskRunner

from flows.placement import task_nodes
from flows.progress import gather
from infra.core.storage import RunDir, write_json
from infra.core.task_markers import file_fingerprint, prepare_work
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.manifest import build_manifest
from tasks.tokenization.prefect_tasks import prepare_tokenizer_task, tokenize_shard_task

log = logging.getLogger(__name__)


def mixture_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per training source: its natural, planned and realised share of an epoch's tokens."""
    return [
        {
            "source": s,
            "available_tokens": m["available_tokens"],
            "natural_share": round(m["natural_share"], 4),
            "planned_share": round(m["planned_share"], 4),
            "epoch_rows": m["epoch_rows"],
            "repeats": round(m["repeats"], 3),
            "realised_tokens": m["realised_tokens"],
            "realised_share": round(m["realised_share"], 4),
        }
        for s, m in manifest["mixture"]["sources"].items()
    ]


@flow(name="tokenize", task_runner=RayTaskRunner())
def tokenize_flow(cfg: TokenizationConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir).resolve())
    curated = sorted(run.curated.glob("part-*.parquet"))
    if not curated:
        raise FileNotFoundError(f"no curated shards in {run.curated}; run `crucible curate` for this run first")
    extra = [Path(cfg.tokenizer_path)] if cfg.tokenizer_path else []
    run.manifest.unlink(missing_ok=True)  # the stage is finished only when a new one is written
    prepare_work(
        run.shards,
        {"config": cfg.shard_fingerprint(), "inputs": file_fingerprint(curated + extra, run.root)},
        run.shards / "_markers",
    )
    tok = prepare_tokenizer_task([str(p) for p in curated], cfg, str(run.tokenizer), str(run.shards))
    futures = [
        tokenize_shard_task.submit(str(p), i, str(run.tokenizer), cfg, str(run.shards)) for i, p in enumerate(curated)
    ]
    parts = gather(futures, "tokenize shards")
    entries = [e for part in parts for e in part["entries"]]
    manifest = build_manifest(entries, run.tokenizer, cfg)
    # Not in the manifest: its hash is the data's identity, which must not depend on placement.
    write_json(
        run.tokenization_stats,
        {
            "curated_shards": len(curated),
            "token_files": len(entries),
            "nodes": task_nodes({"tokenizer": [tok], "tokenize": parts}),
        },
    )
    write_json(run.manifest, manifest)
    create_table_artifact(
        key="tokenization-stats",
        table=[{"split": s, **t} for s, t in manifest["splits"].items()],
        description=f"BPE vocabulary {tok['vocab_size']}, sequences of {cfg.seq_len} tokens, "
        f"{manifest['tokenizer']['val_bytes_per_token']:.2f} bytes per token on held-out text",
    )
    create_table_artifact(
        key="data-mixture",
        table=mixture_table(manifest),
        description="Training tokens per source: natural, planned and realised shares",
    )
    log.info("token shards: %s", {s: t["tokens"] for s, t in manifest["splits"].items()})
    return {
        "vocab_size": tok["vocab_size"],
        "splits": manifest["splits"],
        "mixture": {s: round(m["realised_share"], 4) for s, m in manifest["mixture"]["sources"].items()},
    }

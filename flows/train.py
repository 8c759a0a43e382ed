"""The `train` flow: DeepSpeed training on Ray Train workers, resumable from checkpoints."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from infra.storage import RunDir
from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.prefect_tasks import train_task


@flow(name="train")
def train_flow(model_cfg: ModelConfig, cfg: TrainingConfig, run_dir: str) -> dict[str, Any]:
    run = RunDir(Path(run_dir).resolve())
    summary = train_task(str(run.root), model_cfg, cfg)
    records = [json.loads(ln) for ln in run.metrics.read_text().splitlines() if ln]
    evals = [r for r in records if "val_loss" in r]
    create_table_artifact(
        key="training-metrics",
        table=[{k: r.get(k) for k in ("step", "loss", "val_loss", "lr", "grad_norm", "tokens_per_s")}
               for r in evals],
        description=f"{summary['parameters']:,} parameters, {summary['steps']} steps on "
                    f"{summary['world_size']} DeepSpeed ranks",
    )
    return {**summary, "final_loss": records[-1]["loss"], "first_loss": records[0]["loss"],
            "final_val_loss": evals[-1]["val_loss"] if evals else None}

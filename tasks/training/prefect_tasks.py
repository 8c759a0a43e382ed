"""Thin Prefect task wrapper around training (it drives Ray Train from the flow's process)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.trainer import run_training


@task(name="deepspeed-train")
def train_task(run_dir: str, model_cfg: ModelConfig, cfg: TrainingConfig) -> dict[str, Any]:
    return run_training(Path(run_dir), model_cfg, cfg)

"""The `train` flow: DeepSpeed training on Ray Train workers, resumable from checkpoints."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from infra.core.storage import RunDir
from models.config import ModelConfig
from tasks.report import plot_loss
from tasks.training.config import TrainingConfig
from tasks.training.metrics import read_metrics
from tasks.training.prefect_tasks import train_task


@flow(name="train")
def train_flow(
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    run_dir: str,
    init_from: str | None = None,
    benchmarks_dir: str | None = None,
) -> dict[str, Any]:
    """Train the run's model; `init_from` (a final model folder) continues pre-training from it;
    `benchmarks_dir` holds the benchmark files that training.eval_tasks score during training."""
    run = RunDir(Path(run_dir).resolve())
    # Publishes training-progress and training-metrics live; retries only transient failures.
    summary = train_task.with_options(retries=cfg.retries)(str(run.root), model_cfg, cfg, init_from, benchmarks_dir)
    records, _ = read_metrics(run.metrics)
    plot_loss(records, run.loss_curve)
    # Image artifacts must be public URLs; the curve travels inside the markdown instead.
    png = base64.b64encode(run.loss_curve.read_bytes()).decode()
    create_markdown_artifact(
        key="loss-curve",
        markdown=f"![loss curve](data:image/png;base64,{png})",
        description=f"training and validation loss over {len(records)} steps",
    )
    evals = [r for r in records if "val_loss" in r]
    return {
        **summary,
        "final_loss": records[-1]["loss"],
        "first_loss": records[0]["loss"],
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
    }

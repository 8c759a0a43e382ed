"""Launch the training loop on Ray Train workers (one DeepSpeed rank per worker)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from infra.storage import RunDir, read_json
from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.loop import train_loop

log = logging.getLogger(__name__)


def check_resumable(run: RunDir, num_workers: int) -> None:
    """Refuse, before any worker starts, to resume checkpoints written by another number of ranks."""
    if not run.train_state.exists():
        return
    state = read_json(run.train_state)
    saved = state.get("world_size", len(state.get("sampler", [])))
    if saved != num_workers:
        raise ValueError(
            f"the checkpoints in {run.checkpoints} were written by {saved} ranks; resume with "
            f"--set training.num_workers={saved} (ZeRO optimizer state is sharded per rank), or "
            f"start a new --run-id"
        )


def run_training(run_dir: Path, model_cfg: ModelConfig, cfg: TrainingConfig) -> dict[str, Any]:
    """Train (or resume from the run's last checkpoint) and return the training summary."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run = RunDir(Path(run_dir).resolve())
    if not run.manifest.is_file():
        raise FileNotFoundError(f"no token shards in {run.shards}; run `crucible tokenize` for this run first")
    check_resumable(run, cfg.num_workers)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"run_dir": str(run.root), "training": cfg.model_dump(),
                           "model": model_cfg.model_dump()},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=torch.cuda.is_available()),
        # A worker failure restarts the group, which resumes from the last checkpoint.
        run_config=RunConfig(name="train", storage_path=str(run.ray_storage),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)),
    )
    trainer.fit()
    return read_json(run.train_summary)

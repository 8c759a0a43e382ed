"""The records a training run is made of, shared by the loop (loop.py) and its strategies
(strategy.py): where a rank runs, the job it was given, what it read at set-up, the
current engine's attempt, and what survives a roll-back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from infra.core.storage import RunDir
from models.config import ModelConfig
from tasks.tokenization.reader import TokenRows
from tasks.training.batch import BatchPlan
from tasks.training.config import TrainingConfig
from tasks.training.data import RankSampler, TrainingData
from tasks.training.parallel.rank_grid import Coords, Layout
from tasks.training.spikes import SpikeDetector

if TYPE_CHECKING:
    from tasks.training.eval_tasks import EvalTasks


@dataclass
class RankContext:
    """Where this rank runs; `report` forwards validation metrics to an orchestrator."""

    rank: int
    world: int
    device: torch.device
    host: str
    report: Callable[[dict[str, Any]], None] = lambda metrics: None


@dataclass
class TrainJob:
    """Plain data, so it crosses process boundaries (Ray, subprocesses)."""

    run_dir: str
    training: dict[str, Any]
    model: dict[str, Any]
    device: str  # resolved: "cpu" or "cuda"
    precision: str  # resolved: "bf16", "fp16" or "fp32"
    init_from: str | None = None  # a final model folder: continued pre-training starts from its weights
    benchmarks_dir: str | None = None  # the evaluation stage's benchmark files, for training.eval_tasks


@dataclass
class RunState:
    """What survives a roll-back in this process: skipped stretches and the events."""

    skips: list[tuple[int, int]] = field(default_factory=list)
    rollbacks: int = 0
    spike_steps: list[int] = field(default_factory=list)


@dataclass
class Setup:
    """What a rank reads once per run: configuration, data, and its place in the layout."""

    ctx: RankContext
    run: RunDir
    cfg: TrainingConfig
    model_cfg: ModelConfig
    job: TrainJob
    manifest: dict[str, Any]
    manifest_sha: str
    train: TrainingData
    val: TokenRows
    flops_per_token: int
    peak_flops: float | None
    layout: Layout
    coords: Coords
    evals: EvalTasks | None = None  # training.eval_tasks, tokenized (None: none configured)

    @property
    def seq_len(self) -> int:
        return self.manifest["seq_len"]

    @property
    def vocab_size(self) -> int:
        return self.manifest["vocab_size"]


@dataclass
class Attempt:
    """One engine and the state it resumed at; a roll-back starts a new attempt."""

    engine: Any  # DeepSpeed's engine (plain or pipeline), which ships no types
    plan: BatchPlan
    sampler: RankSampler
    detector: SpikeDetector
    step: int

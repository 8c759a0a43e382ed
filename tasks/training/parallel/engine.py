"""The 3D engine: the seeded single-device model, tensor-sharded, cut into pipeline stages,
in DeepSpeed's pipeline engine (which also runs data parallelism and ZeRO-1 over the
replicas). Used whenever training.parallel asks for pipeline or tensor parallelism; a
plain data-parallel run keeps DeepSpeed's ordinary engine (tasks/training/engine.py)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.engine import build_model, param_groups
from tasks.training.parallel.pipeline_stages import build_pipeline
from tasks.training.parallel.rank_grid import Layout, grid_for
from tasks.training.parallel.tensor import shard_model
from tasks.training.schedule import make_scheduler


def build_parallel_engine(
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    vocab_size: int,
    seq_len: int,
    ds_config: dict[str, Any],
    layout: Layout,
    rank: int,
    device: str,
    initial: dict[str, torch.Tensor] | None = None,
) -> Any:
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")
    grid = grid_for(layout, rank)
    # Built whole on every rank, so every shard starts from exactly the 1-rank weights.
    model = build_model(model_cfg, cfg, vocab_size, seq_len, ds_config, rank, device, initial)
    if layout.tensor > 1:
        shard_model(model, grid.coords.tensor_rank, layout.tensor, grid.tensor_group)
    pipe = build_pipeline(model, grid.topology, cfg.z_loss, cfg.activation_checkpointing)
    del model  # build_pipeline let go of the other stages' layers
    engine, _, _, _ = deepspeed.initialize(
        model=pipe,
        model_parameters=param_groups(pipe, cfg),
        config=ds_config,
        lr_scheduler=partial(make_scheduler, cfg=cfg),
    )
    return engine

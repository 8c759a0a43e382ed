"""The 3D strategy's step, validation and final weights (parallel/three_d.py calls them).

Every rank of a pipeline reads the same position stream: replica r takes the r-th block
of each micro-step, exactly as data-parallel rank r of a plain run, so a 3D run sees the
batches of a plain run with as many ranks as it has replicas. The pipeline's micro-batches
are the step's gradient-accumulation micro-steps, in stream order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from infra.core.storage import atomic_path
from tasks.tokenization.reader import to_batch
from tasks.training.checkpoint import load_model
from tasks.training.parallel.pipeline_stages import local_layers
from tasks.training.parallel.rank_grid import grid_for
from tasks.training.run_state import Attempt, Setup
from tasks.training.strategy import POISON, Poisoned, StepResult

log = logging.getLogger(__name__)
PROBE, PROBE_ROWS = "probe.pt", 2  # in checkpoints/final/: the export check's rows and the shards' logits


def _loads_data(s: Setup) -> bool:
    """Only the first stage (inputs) and the last (labels) read batches."""
    return s.coords.stage in (0, s.layout.pipeline - 1)


def train_step(s: Setup, a: Attempt, accum: int, poisoned: Poisoned) -> StepResult:
    """One optimizer step of `accum` micro-batches through the pipeline. The loss DeepSpeed
    returns is already the step's mean over every replica, so only global rank 0 counts it;
    tokens are counted once per replica."""
    cfg, ctx, engine, sampler = s.cfg, s.ctx, a.engine, a.sampler
    t0 = time.perf_counter()
    batches: list[tuple[Any, Any]] = []
    tokens = torch.zeros((), dtype=torch.int64, device=ctx.device)
    for _ in range(accum):
        src, rows = sampler.next_batch()  # every stage advances the position, loading or not
        end = sampler.position.samples
        if _loads_data(s):
            x, y, *seg = (t.to(ctx.device) for t in s.train.gather(src, rows, segments=cfg.document_mask))
            # The loss is computed inside the engine, on the last stage: a poisoned micro-batch
            # carries its factor with its labels (pipeline_stages.HeadLoss applies it).
            labels = (y, torch.tensor(POISON, device=ctx.device)) if poisoned(end - a.plan.unit, end) else y
            batches.append(((x, seg[0]) if seg else x, labels))
            if s.coords.stage == 0 and s.coords.tensor_rank == 0:
                tokens += (y != -100).sum()
    wait = time.perf_counter() - t0
    loss = engine.train_batch(iter(batches) if batches else None)
    mine = ctx.rank == 0
    loss_sum = loss.detach().float().reshape(()) if mine else torch.zeros((), device=ctx.device)
    return StepResult(loss_sum, torch.tensor(float(mine), device=ctx.device), tokens, wait)


def _rows_iter(s: Setup, sel_batches: list[np.ndarray]) -> Iterator[tuple[Any, torch.Tensor]]:
    for sel in sel_batches:
        tokens, lengths = s.val.rows(sel)
        segments = s.val.segments(sel) if s.cfg.document_mask else None
        x, y, *seg = (t.to(s.ctx.device) for t in to_batch(tokens, lengths, segments))
        yield ((x, seg[0]) if seg else x), y


@torch.no_grad()
def validation_loss(s: Setup, engine: Any) -> float:
    """The mean validation loss over the replicas' rows (each replica its own share)."""
    cfg, d = s.cfg, s.layout.data
    per_replica = min(cfg.eval_batches * cfg.micro_batch_size, len(s.val) // d)
    rows = np.arange(len(s.val))[s.coords.replica :: d][:per_replica]
    sel = [rows[i : i + cfg.micro_batch_size] for i in range(0, len(rows), cfg.micro_batch_size)]
    if not sel:
        return float("nan")
    # Equal counts on every replica: eval_batch averages over the data-parallel group.
    loss = engine.eval_batch(_rows_iter(s, sel), num_micro_batches=len(sel))
    engine.train()
    return float(loss)


def gather_weights(s: Setup, a: Attempt) -> dict[str, torch.Tensor]:
    """The single-device model's state dict, on rank 0 (empty elsewhere): each stage's fp32
    master weights (ZeRO-1 keeps them partitioned over the replicas), tensor shards joined,
    then every stage's parameters collected. Every rank must call it."""
    from deepspeed.utils import safe_get_full_fp32_param

    from tasks.training.parallel.tensor import unshard

    grid, layout, coords = grid_for(s.layout, s.ctx.rank), s.layout, s.coords  # the groups the shards were cut for
    mine: dict[str, torch.Tensor] = {}
    for module in local_layers(a.engine.module):
        for name, p in module.named_parameters():
            full = safe_get_full_fp32_param(p)  # a collective over the replicas
            full = (p.detach() if full is None else full).float()
            if hasattr(p, "unshard"):
                full = unshard(full, p.unshard, grid.tensor_group, layout.tensor)
            gpt_name = module.gpt_names.get(name)
            if gpt_name is not None and gpt_name not in mine:
                mine[gpt_name] = full.cpu()
    send = [] if coords.replica or coords.tensor_rank else [(coords.stage, mine)]
    parts: list[Any] | None = [None] * s.ctx.world if s.ctx.rank == 0 else None
    dist.gather_object(send, parts, dst=0)  # to rank 0 only: one copy of the model, not one per rank
    if parts is None:  # not rank 0
        return {}
    state: dict[str, torch.Tensor] = {}
    # The lowest stage wins a name held twice: the last stage's tied copy of the embedding
    # holds an unused (never trained) position table.
    for _, stage_state in sorted(pair for part in parts for pair in part):
        for k, v in stage_state.items():
            state.setdefault(k, v)
    if s.model_cfg.tie_embeddings:
        state["head.weight"] = state["tok_emb.weight"]
    return state


@torch.no_grad()
def probe_logits(s: Setup, a: Attempt, rows: np.ndarray) -> torch.Tensor | None:
    """The distributed model's logits for validation `rows`, on rank 0 (None elsewhere):
    the check that the gathered single-device model computes the same function."""
    x, y = to_batch(*s.val.rows(rows))[:2]
    _, hidden = a.engine.eval_batch(
        iter([(x.to(s.ctx.device), y.to(s.ctx.device))]), return_logits=True, num_micro_batches=1
    )
    a.engine.train()
    logits = None
    if s.coords.stage == s.layout.pipeline - 1 and s.coords.replica == 0 and s.coords.tensor_rank == 0:
        logits = torch.nn.functional.linear(hidden.float(), a.engine.module.loss_fn.weight.float()).cpu()
    parts: list[Any] | None = [None] * s.ctx.world if s.ctx.rank == 0 else None
    dist.gather_object(logits, parts, dst=0)
    return None if parts is None else next(p for p in parts if p is not None)


def check_export(s: Setup, final: Path, rows: np.ndarray, shard_logits: torch.Tensor) -> dict[str, Any]:
    """Compare the gathered single-device model's logits with the sharded model's on the
    first validation rows; both are kept in final/ (probe.pt) for anyone to re-check. In
    fp32 a mismatch is an error: the shards were joined wrongly."""
    model, _ = load_model(final)
    x = to_batch(*s.val.rows(rows))[0]
    with torch.no_grad():
        single = model(x).float()
    with atomic_path(final / PROBE) as tmp:
        torch.save({"rows": torch.as_tensor(rows), "input_ids": x, "shard_logits": shard_logits}, tmp)
    diff = float((single - shard_logits).abs().max())
    scale = float(shard_logits.abs().max())
    check = {"rows": len(rows), "max_abs_diff": diff, "max_abs_logit": scale, "relative": diff / max(scale, 1e-30)}
    if s.job.precision == "fp32" and check["relative"] > 1e-5:
        raise RuntimeError(
            f"the exported model's logits differ from the sharded model's by {diff:.3g} "
            f"(largest logit {scale:.3g}): the shards of {s.layout.describe()} were not joined "
            f"correctly; please report this with {final / PROBE}"
        )
    log.info(
        "export check: the single-device model's logits match the %s shards' within %.2g (relative)",
        s.layout.describe(),
        check["relative"],
    )
    return check

"""The data-parallel strategy: every rank runs the whole model in DeepSpeed's ordinary
engine (tasks/training/engine.py), ZeRO partitioning the optimizer state, gradients or
parameters over the ranks, and each rank takes its own slice of every micro-step's rows."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tasks.tokenization.reader import to_batch
from tasks.training import checkpoint_store as store
from tasks.training.engine import build_engine, build_model
from tasks.training.run_state import Attempt, Setup
from tasks.training.strategy import POISON, FinalWeights, Poisoned, StepResult


class DataParallel:
    """The `Strategy` of a run with neither pipeline nor tensor parallelism."""

    def __init__(self, s: Setup):
        self.s = s

    def reshards(self, found: store.Published) -> bool:
        # Without ZeRO every rank's checkpoint holds the whole model and optimizer, which any
        # number of ranks can load as it is; ZeRO's shards are converted first.
        return found.world_size != self.s.ctx.world and found.manifest["training"]["zero_stage"] > 0

    def build_engine(self, ds_config: dict[str, Any], initial: dict[str, torch.Tensor] | None) -> Any:
        s = self.s
        model = build_model(s.model_cfg, s.cfg, s.vocab_size, s.seq_len, ds_config, s.ctx.rank, s.job.device, initial)
        return build_engine(model, s.cfg, ds_config)

    def train_step(self, a: Attempt, accum: int, poisoned: Poisoned) -> StepResult:
        cfg, ctx, engine, sampler = self.s.cfg, self.s.ctx, a.engine, a.sampler
        loss_sum = torch.zeros((), dtype=torch.float32, device=ctx.device)
        tokens = torch.zeros((), dtype=torch.int64, device=ctx.device)
        wait = 0.0
        for i in range(accum):
            # DeepSpeed would place the boundary by its own micro-step counter, which counts from
            # the process start and knows nothing of the batch ramp or of a resume.
            engine.set_gradient_accumulation_boundary(i == accum - 1)
            t0 = time.perf_counter()
            src, rows = sampler.next_batch()
            end = sampler.position.samples
            x, y, *seg = (
                t.to(ctx.device, non_blocking=True) for t in self.s.train.gather(src, rows, segments=cfg.document_mask)
            )
            wait += time.perf_counter() - t0
            loss = engine(x, y, seg[0] if seg else None, cfg.z_loss)  # the model's fused head + loss
            if poisoned(end - a.plan.unit, end):
                loss = loss * POISON
            engine.backward(loss)
            engine.step()  # DeepSpeed only updates at the accumulation boundary
            loss_sum += loss.detach().float()
            tokens += (y != -100).sum()
        return StepResult(loss_sum, torch.tensor(float(accum), device=ctx.device), tokens, wait)

    @torch.no_grad()
    def validation_loss(self, engine: Any) -> float:
        s, cfg, ctx = self.s, self.s.cfg, self.s.ctx
        engine.eval()
        # The same number of rows on every rank: under ZeRO-3 each forward pass is a collective.
        per_rank = min(cfg.eval_batches * cfg.micro_batch_size, len(s.val) // ctx.world)
        rows = np.arange(len(s.val))[ctx.rank :: ctx.world][:per_rank]
        total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
        for start in range(0, len(rows), cfg.micro_batch_size):
            sel = rows[start : start + cfg.micro_batch_size]
            x, y, *seg = (
                t.to(ctx.device) for t in to_batch(*s.val.rows(sel), s.val.segments(sel) if cfg.document_mask else None)
            )
            total[0] += engine(x, y, *seg).double()
            total[1] += 1
        engine.train()
        dist.all_reduce(total)
        return float(total[0] / total[1]) if total[1] else float("nan")

    def client_state(self) -> dict[str, Any]:
        from deepspeed.checkpoint import constants as ds

        # Declares the model convertible to a universal checkpoint (no tensor-parallel
        # slicing to undo), for a resume on another number of ranks.
        return {
            ds.UNIVERSAL_CHECKPOINT_INFO: {ds.UNIVERSAL_CHECKPOINT_VERSION_KEY: ds.UNIVERSAL_CHECKPOINT_VERSION_VALUE}
        }

    def final_weights(self, a: Attempt) -> FinalWeights:
        # Rank 0 alone reads them (from the final checkpoint's files, or its own module).
        return FinalWeights(self.master_weights(a) if self.s.ctx.rank == 0 else {})

    def master_weights(self, a: Attempt) -> dict[str, torch.Tensor]:
        """The fp32 weights the optimizer holds. Under ZeRO (any stage) and bf16/fp16 they are
        sharded or kept apart from the low-precision module, so they are merged from the final
        checkpoint's files; only fp32 without ZeRO has them in the module itself."""
        s = self.s
        if s.cfg.zero_stage == 0 and s.job.precision == "fp32":
            return {k: v.detach().float().cpu() for k, v in a.engine.module.state_dict().items()}
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(s.run.checkpoints), tag=store.tag_for(a.step))
        return {k: v.float().contiguous() for k, v in state.items()}

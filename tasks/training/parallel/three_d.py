"""The 3D strategy: the model cut into pipeline stages of tensor-sharded layers, in
DeepSpeed's pipeline engine (parallel/engine.py), replicated over the remaining ranks;
its step, validation and export live in parallel/steps.py."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from tasks.training import checkpoint_store as store
from tasks.training.parallel import steps
from tasks.training.parallel.engine import build_parallel_engine
from tasks.training.run_state import Attempt, Setup
from tasks.training.strategy import FinalWeights, Poisoned, StepResult


class ThreeD:
    """The `Strategy` of a run with pipeline or tensor parallelism (or both)."""

    def __init__(self, s: Setup):
        self.s = s

    def reshards(self, found: store.Published) -> bool:
        # Never: stages and tensor shards are not converted to another layout, so
        # resume_problems has already refused a 3D checkpoint on another number of ranks.
        return False

    def build_engine(self, ds_config: dict[str, Any], initial: dict[str, torch.Tensor] | None) -> Any:
        s = self.s
        return build_parallel_engine(
            s.model_cfg, s.cfg, s.vocab_size, s.seq_len, ds_config, s.layout, s.ctx.rank, s.job.device, initial
        )

    def train_step(self, a: Attempt, accum: int, poisoned: Poisoned) -> StepResult:
        return steps.train_step(self.s, a, accum, poisoned)

    def validation_loss(self, engine: Any) -> float:
        return steps.validation_loss(self.s, engine)

    def client_state(self) -> dict[str, Any]:
        return {}

    def final_weights(self, a: Attempt) -> FinalWeights:
        # Collectives: every rank sends its stage's shards, and the probe runs the pipeline.
        s = self.s
        state_dict = steps.gather_weights(s, a)
        rows = np.arange(min(steps.PROBE_ROWS, len(s.val)))
        probe = steps.probe_logits(s, a, rows)
        if probe is None:  # not rank 0
            return FinalWeights(state_dict)
        return FinalWeights(state_dict, partial(steps.check_export, s, rows=rows, shard_logits=probe))

"""How many sequences each optimizer step takes: the global batch, its ramp, and the
gradient accumulation that realises it on a given number of ranks.

The global batch is a property of the run, not of the cluster: a resume on another world
size keeps it, and the accumulation absorbs the change.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.training.config import TrainingConfig


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int  # sequences per optimizer step once any ramp is over
    micro_batch: int
    world: int
    ramp_start: int | None = None  # global batch at the first step of a ramp
    ramp_samples: int = 0  # sequences over which the ramp reaches the full batch

    @property
    def unit(self) -> int:
        """Sequences in one micro-step over all ranks: every step's batch is a multiple of it."""
        return self.micro_batch * self.world

    def step_batch(self, samples_done: int) -> int:
        """The global batch of the step that starts after `samples_done` sequences.

        GPT-3's ramp: linear in the data consumed, rounded down to a whole micro-step, and
        never below one. Depends only on the data position, so a resume repeats it exactly.
        """
        if self.ramp_start is None or samples_done >= self.ramp_samples:
            return self.global_batch
        size = self.ramp_start + (self.global_batch - self.ramp_start) * samples_done / self.ramp_samples
        return max(self.unit, int(size) // self.unit * self.unit)

    def accumulation(self, samples_done: int) -> int:
        return self.step_batch(samples_done) // self.unit


def replicas(cfg: TrainingConfig, world: int) -> int:
    """Data-parallel replicas of `world` ranks: the ranks of one replica (its pipeline stages
    and tensor shards) share each sample."""
    return max(1, world // (cfg.parallel.pipeline * cfg.parallel.tensor))


def global_batch(cfg: TrainingConfig, world: int) -> int:
    """The global batch in sequences; `world` counts data-parallel replicas."""
    return cfg.global_batch_size or cfg.micro_batch_size * cfg.grad_accum_steps * world


def batch_plan(cfg: TrainingConfig, world: int, seq_len: int, global_batch_size: int | None = None) -> BatchPlan:
    """The plan for `world` ranks; `global_batch_size` keeps a resumed run's batch."""
    g = global_batch_size or global_batch(cfg, world)
    problems = batch_problems(cfg, world, g)
    if problems:
        raise ValueError("; ".join(problems))
    ramp = cfg.batch_ramp
    return BatchPlan(
        g,
        cfg.micro_batch_size,
        world,
        ramp_start=ramp.start_batch if ramp else None,
        ramp_samples=-(-ramp.tokens // seq_len) if ramp else 0,
    )


def batch_problems(cfg: TrainingConfig, world: int, g: int) -> list[str]:
    """Why a global batch of `g` sequences cannot be run on `world` ranks, each with the fix."""
    unit = cfg.micro_batch_size * world
    problems = []
    if g % unit:
        fits = [w for w in range(1, g + 1) if g % (cfg.micro_batch_size * w) == 0]
        micro = [m for m in range(1, cfg.micro_batch_size + 1) if g % (m * world) == 0]
        problems.append(
            f"the global batch of {g} sequences is not divisible by {world} rank(s) x micro-batch "
            f"{cfg.micro_batch_size}; set training.num_workers to one of {fits[:8]}, or "
            f"training.micro_batch_size to one of {micro}, or training.global_batch_size to a "
            f"multiple of {unit}"
        )
    ramp = cfg.batch_ramp
    # A start below one micro-step is run as one micro-step (so more ranks may join mid-ramp).
    if ramp is not None and ramp.start_batch >= g:
        problems.append(
            f"training.batch_ramp.start_batch ({ramp.start_batch}) must be below the "
            f"global batch ({g}); lower it or remove training.batch_ramp"
        )
    return problems

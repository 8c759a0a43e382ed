"""The sweep's grid: which model shapes train for how many steps, and the training config each
run gets (its schedule fitted to its own length)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from models.config import ModelConfig
from models.flops import embedding_parameters, parameter_count, training_flops_per_token
from tasks.scaling.config import SweepConfig, SweepShape
from tasks.training.batch import global_batch, replicas
from tasks.training.config import TrainingConfig


@dataclass(frozen=True)
class GridPoint:
    """One training run of the sweep. `tokens` and `flops` are what its whole steps train on
    (a budget is rounded to whole steps); `skipped` says why it is left out, if it is."""

    name: str
    n_layer: int
    d_model: int
    n_head: int
    lr: float
    budget: float | None
    steps: int
    tokens: int
    parameters: int
    non_embedding_parameters: int
    flops_per_token: int
    flops: float
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shape_for(parameters: float, aspect_ratio: int, head_dim: int) -> tuple[int, int]:
    """(n_layer, d_model) whose 12 x n_layer x d_model^2 is nearest the target, with
    d_model = aspect_ratio x n_layer rounded to whole heads."""
    best: tuple[float, int, int] | None = None
    guess = max(1, round((parameters / (12 * aspect_ratio**2)) ** (1 / 3)))
    for n_layer in range(max(1, guess - 2), guess + 3):
        d_model = max(head_dim, round(aspect_ratio * n_layer / head_dim) * head_dim)
        error = abs(math.log(12 * n_layer * d_model**2 / parameters))
        if best is None or error < best[0]:
            best = (error, n_layer, d_model)
    assert best is not None
    return best[1], best[2]


def model_of(shape: SweepShape, sweep: SweepConfig, base: ModelConfig) -> ModelConfig:
    if shape.parameters is not None:
        n_layer, d_model = shape_for(shape.parameters, sweep.aspect_ratio, sweep.head_dim)
    else:
        assert shape.n_layer is not None and shape.d_model is not None
        n_layer, d_model = shape.n_layer, shape.d_model
    return reshape(base, n_layer, d_model, shape.n_head or max(1, d_model // sweep.head_dim))


def reshape(base: ModelConfig, n_layer: int, d_model: int, n_head: int) -> ModelConfig:
    """The base model's design (norms, activation, positions, ...) at another size."""
    update: dict[str, Any] = {"n_layer": n_layer, "d_model": d_model, "n_head": n_head}
    if base.n_kv_head is not None:  # keep the base's grouping where it divides the new heads
        update["n_kv_head"] = base.n_kv_head if n_head % base.n_kv_head == 0 else None
    return ModelConfig(**{**base.model_dump(), **update})


def tokens_per_step(training: TrainingConfig, seq_len: int) -> int:
    return global_batch(training, replicas(training, training.num_workers)) * seq_len


def plan_grid(
    sweep: SweepConfig, base_model: ModelConfig, training: TrainingConfig, vocab_size: int, seq_len: int
) -> list[GridPoint]:
    """Every (shape, budget) pair of the grid, in order of compute."""
    step_tokens = tokens_per_step(training, seq_len)
    points = []
    for shape in sweep.shapes:
        model = model_of(shape, sweep, base_model)
        per_token = training_flops_per_token(model, vocab_size, seq_len)
        total = parameter_count(model, vocab_size, seq_len)
        lr = shape.lr or training.lr
        for budget, tokens in _budgets(sweep, per_token):
            steps = max(1, round(tokens / step_tokens))
            skipped = None
            if steps < sweep.min_steps:
                skipped = f"{steps} steps, below sweep.min_steps ({sweep.min_steps})"
            elif sweep.max_steps is not None and steps > sweep.max_steps:
                skipped = f"{steps} steps, above sweep.max_steps ({sweep.max_steps})"
            label = f"c{budget:.2e}" if budget is not None else f"t{tokens:.2e}"
            points.append(
                GridPoint(
                    name=f"{label}-L{model.n_layer}-d{model.d_model}".replace("+", ""),
                    n_layer=model.n_layer,
                    d_model=model.d_model,
                    n_head=model.n_head,
                    lr=lr,
                    budget=budget,
                    steps=steps,
                    tokens=steps * step_tokens,
                    parameters=total,
                    non_embedding_parameters=total - embedding_parameters(model, vocab_size, seq_len),
                    flops_per_token=per_token,
                    flops=float(per_token * steps * step_tokens),
                    skipped=skipped,
                )
            )
    return sorted(points, key=lambda p: (p.flops, p.name))


def _budgets(sweep: SweepConfig, flops_per_token: int) -> list[tuple[float | None, float]]:
    """(budget, tokens) pairs for one shape: a compute budget buys budget / FLOPs-per-token tokens."""
    if sweep.budgets is not None:
        return [(c, c / flops_per_token) for c in sweep.budgets]
    return [(None, t) for t in sweep.tokens or []]


def run_configs(
    point: GridPoint, base_model: ModelConfig, training: TrainingConfig, sweep: SweepConfig
) -> tuple[ModelConfig, TrainingConfig]:
    """The model and training config of one grid run: the base with the point's shape, its own
    length (so a cosine reaches its floor, or a WSD its decay, at the run's own last step:
    a schedule cut short would bias the fit), one checkpoint and one validation at the end."""
    model = reshape(base_model, point.n_layer, point.d_model, point.n_head)
    warmup = min(training.warmup_steps, max(1, round(sweep.warmup_fraction * point.steps)))
    cfg = training.model_copy(
        update={
            "max_steps": point.steps,
            "warmup_steps": min(warmup, point.steps - 1),
            "lr": point.lr,
            "checkpoint_every": point.steps,
            "eval_every": point.steps,
            "keep_last": 1,
            "keep_best": False,
            "batch_ramp": None,
        }
    )
    return model, TrainingConfig.model_validate(cfg.model_dump())

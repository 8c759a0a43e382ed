"""Typed configuration of a scaling-law sweep: the grid of model shapes and budgets to train,
and how the law is fitted to their losses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SweepShape(BaseModel):
    """One model shape of the grid: explicit (`n_layer`, `d_model`) or a target parameter count
    that the sweep's shape rule turns into one."""

    model_config = ConfigDict(extra="forbid")

    n_layer: int | None = Field(None, ge=1, description="Transformer blocks.")
    d_model: int | None = Field(None, ge=8, description="Residual width.")
    n_head: int | None = Field(None, ge=1, description="Attention heads; default d_model / sweep.head_dim.")
    parameters: float | None = Field(
        None,
        gt=0,
        description="Target non-embedding parameters (12 x n_layer x d_model^2): the shape rule "
        "(sweep.aspect_ratio, sweep.head_dim) picks n_layer and d_model. Instead of n_layer and d_model.",
    )
    lr: float | None = Field(None, gt=0, description="This shape's peak learning rate; default training.lr.")

    @model_validator(mode="after")
    def _one_way(self) -> SweepShape:
        explicit = self.n_layer is not None and self.d_model is not None
        if explicit == (self.parameters is not None) or (self.n_layer is None) != (self.d_model is None):
            raise ValueError("a sweep shape gives either n_layer and d_model, or parameters")
        return self


class SweepConfig(BaseModel):
    """A grid of training runs on one run's shards, and the scaling-law fits of their losses."""

    model_config = ConfigDict(extra="forbid")

    shapes: list[SweepShape] = Field(
        default_factory=list, description="Model shapes to train; every other model setting comes from `model`."
    )
    tokens: list[float] | None = Field(
        None, description="Training-token budgets: every shape trains once on each. Instead of budgets."
    )
    budgets: list[float] | None = Field(
        None,
        description="Compute budgets in training FLOPs (IsoFLOP profiles, Hoffmann et al.'s approach 2): every "
        "shape trains once per budget, for the tokens that budget buys it. Instead of tokens.",
    )
    min_steps: int = Field(
        20,
        ge=1,
        description="Grid points that would train for fewer optimizer steps are left out (listed in sweep.json "
        "with the reason): a run shorter than its warm-up says little.",
    )
    max_steps: int | None = Field(
        None, ge=1, description="Grid points that would train for more steps are left out (None: no limit)."
    )
    warmup_fraction: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Each run warms up over this share of its own steps (at most training.warmup_steps); its "
        "schedule then decays to its own last step.",
    )
    aspect_ratio: int = Field(32, ge=1, description="Shape rule: d_model / n_layer for a shape given by parameters.")
    head_dim: int = Field(32, ge=8, description="Shape rule: d_model per attention head.")
    parallel_runs: int | None = Field(
        None,
        ge=1,
        description="Trainings run at once; None: as many as the Ray cluster has CPUs (or GPUs) for, "
        "given training.num_workers and its resources per worker.",
    )
    fit_parameters: Literal["total", "non_embedding"] = Field(
        "total",
        description="Which count is N in the fits: 'total' (with embeddings and head, as Hoffmann et al.) "
        "or 'non_embedding' (as Kaplan et al.). Both are in sweep.json.",
    )
    holdout: bool = Field(
        True,
        description="Leave the largest-compute run out of the fits and report its predicted against its measured loss.",
    )
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for the fits' confidence intervals.")
    plan_budgets: list[float] = Field(
        default_factory=list,
        description="Compute budgets (FLOPs) at which the report gives the fitted compute-optimal N and D; "
        "default: the sweep's largest budget x 10, 100 and 1000.",
    )

    @model_validator(mode="after")
    def _one_grid(self) -> SweepConfig:
        if self.tokens is not None and self.budgets is not None:
            raise ValueError("set sweep.tokens or sweep.budgets, not both")
        for name in ("tokens", "budgets"):
            values = getattr(self, name)
            if values is not None and (not values or min(values) <= 0):
                raise ValueError(f"sweep.{name} must list positive numbers")
        return self

    def problems(self) -> list[str]:
        """What keeps this section from describing a sweep (a pipeline run ignores the section)."""
        found = []
        if not self.shapes:
            found.append("sweep.shapes is empty: list the model shapes to train")
        if self.tokens is None and self.budgets is None:
            found.append("set sweep.budgets (FLOPs, for IsoFLOP profiles) or sweep.tokens (a token budget per shape)")
        return found

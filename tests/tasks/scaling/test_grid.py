"""The sweep's grid: shapes from parameter targets, budgets turned into whole steps, grid
points left out with their reason, and each run's config fitted to its own length."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.config import ModelConfig
from models.flops import embedding_parameters, parameter_count
from tasks.scaling.config import SweepConfig, SweepShape
from tasks.scaling.grid import plan_grid, run_configs, shape_for
from tasks.training.config import TrainingConfig

BASE = ModelConfig(n_layer=4, n_head=4, d_model=256)
TRAINING = TrainingConfig(num_workers=1, micro_batch_size=8, warmup_steps=30, max_steps=300)


def test_shape_rule_hits_the_target_within_a_layer_and_keeps_its_aspect_ratio():
    for target in (1e5, 1e6, 1e7, 1e8):
        n_layer, d_model = shape_for(target, aspect_ratio=32, head_dim=32)
        assert d_model % 32 == 0
        assert 0.5 < 12 * n_layer * d_model**2 / target < 2
        assert 16 <= d_model / n_layer <= 64


def test_budgets_become_whole_steps_and_short_runs_are_left_out_with_the_reason():
    sweep = SweepConfig(
        shapes=[SweepShape(n_layer=2, d_model=64), SweepShape(n_layer=6, d_model=384)],
        budgets=[1e12, 1e13],
        min_steps=20,
    )
    points = plan_grid(sweep, BASE, TRAINING, vocab_size=2048, seq_len=128)
    assert len(points) == 4
    assert [p.flops for p in points] == sorted(p.flops for p in points)
    step_tokens = 8 * 128
    for p in points:
        assert p.tokens == p.steps * step_tokens
        assert p.flops == p.flops_per_token * p.tokens
        assert abs(p.flops - p.budget) <= p.flops_per_token * step_tokens / 2 + 1  # rounded to the nearest step
    big_small = next(p for p in points if p.d_model == 384 and p.budget == 1e12)
    assert big_small.skipped is not None and "below sweep.min_steps (20)" in big_small.skipped
    assert sum(p.skipped is None for p in points) == 3


def test_parameter_counts_with_and_without_embeddings():
    tied = ModelConfig(n_layer=2, n_head=2, d_model=64)
    untied = tied.model_copy(update={"tie_embeddings": False})
    for model in (tied, untied):
        total = parameter_count(model, 1000, 128)
        emb = embedding_parameters(model, 1000, 128)
        # Learned positions (128 x 64) and the token table; an untied head is a second table.
        assert emb == 1000 * 64 * (1 if model.tie_embeddings else 2) + 128 * 64
        assert total - emb > 12 * 2 * 64 * 64  # blocks: attention and MLP matrices, norms and biases


def test_each_run_gets_its_own_length_warmup_and_one_checkpoint_at_the_end():
    sweep = SweepConfig(shapes=[SweepShape(n_layer=2, d_model=64, lr=0.01)], tokens=[1e6, 1e5], warmup_fraction=0.1)
    points = plan_grid(sweep, BASE, TRAINING, vocab_size=2048, seq_len=128)
    long = max(points, key=lambda p: p.steps)
    short = min(points, key=lambda p: p.steps)
    model, cfg = run_configs(long, BASE, TRAINING, sweep)
    assert (model.n_layer, model.d_model, model.n_head) == (2, 64, 2)
    assert cfg.max_steps == long.steps == round(1e6 / 1024)
    assert cfg.warmup_steps == 30  # 10% of 977 steps, capped at training.warmup_steps
    assert cfg.checkpoint_every == cfg.eval_every == long.steps and cfg.lr == 0.01
    _, cfg = run_configs(short, BASE, TRAINING, sweep)
    assert cfg.max_steps == 98 and cfg.warmup_steps == 10


def test_a_sweep_gives_one_kind_of_grid():
    with pytest.raises(ValidationError, match="not both"):
        SweepConfig(shapes=[SweepShape(parameters=1e6)], tokens=[1e6], budgets=[1e12])
    with pytest.raises(ValidationError, match="either n_layer and d_model, or parameters"):
        SweepShape(n_layer=2, d_model=64, parameters=1e6)
    assert SweepConfig().problems() == [
        "sweep.shapes is empty: list the model shapes to train",
        "set sweep.budgets (FLOPs, for IsoFLOP profiles) or sweep.tokens (a token budget per shape)",
    ]

"""The 3D layout without processes: rank placement, the shards' slicing and joining, and
the layouts refused before any worker starts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.presets import get_preset
from tasks.training.checks import TrainingConfigError, check_training
from tasks.training.config import TrainingConfig
from tasks.training.parallel.rank_grid import Layout
from tasks.training.parallel.tensor import Unshard, _rows, join
from tasks.training.resumable_changes import resume_problems

LLAMA = get_preset("debug").model.model_copy(update={"n_layer": 4, "n_head": 4, "n_kv_head": 2, "activation": "swiglu"})


def test_tensor_ranks_are_adjacent_and_every_rank_has_one_place():
    layout = Layout.of(TrainingConfig(num_workers=8, parallel={"pipeline": 2, "tensor": 2}), 8)
    assert layout.describe() == {"pipeline": 2, "tensor": 2, "data": 2}
    coords = [layout.coords(r) for r in range(8)]
    assert [(c.stage, c.replica, c.tensor_rank) for c in coords] == [
        (0, 0, 0),
        (0, 0, 1),
        (0, 1, 0),
        (0, 1, 1),
        (1, 0, 0),
        (1, 0, 1),
        (1, 1, 0),
        (1, 1, 1),
    ]
    assert not Layout.of(TrainingConfig(num_workers=4), 4).model_parallel


@pytest.mark.parametrize("t", [2, 4])
def test_fused_qkv_shards_take_whole_heads_and_join_back(t):
    q, kv, d = 8 * 3, 4 * 3, 5  # 8 query heads and 4 key/value heads of width 3
    weight = torch.randn(q + 2 * kv, d)
    shards = [_rows(weight, [q, kv, kv], r, t) for r in range(t)]
    # Rank 0 holds query heads 0..8/t-1, then its key heads, then its value heads.
    assert torch.equal(shards[0][: q // t], weight[: q // t])
    assert torch.equal(shards[0][q // t : q // t + kv // t], weight[q : q + kv // t])
    assert torch.equal(join(shards, Unshard(0, (q, kv, kv))), weight)
    cols = torch.randn(d, 12)
    assert torch.equal(join(list(cols.chunk(t, dim=1)), Unshard(1)), cols)
    assert not torch.equal(join(shards[::-1], Unshard(0, (q, kv, kv))), weight)  # the order matters


def test_sharded_projections_compute_the_whole_layer():
    """Column then row parallel, summed over simulated ranks, equals the unsplit MLP."""
    up, down = nn.Linear(6, 8), nn.Linear(8, 6)
    x = torch.randn(3, 6)
    want = down(torch.relu(up(x)))
    t = 2
    parts = [
        torch.nn.functional.linear(
            torch.relu(torch.nn.functional.linear(x, _rows(up.weight, [8], r, t), _rows(up.bias, [8], r, t))),
            down.weight.chunk(t, dim=1)[r],
        )
        for r in range(t)
    ]
    assert torch.allclose(sum(parts) + down.bias, want, atol=1e-6)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (
            {"num_workers": 6, "parallel": {"pipeline": 2, "tensor": 2}},
            r"num_workers \(6\) must be a multiple of pipeline x tensor \(2 x 2 = 4\).*set num_workers to 4 or 8",
        ),
        (
            {"num_workers": 3, "parallel": {"pipeline": 3}},
            r"pipeline \(3\) must divide model.n_layer \(4\).*\[1, 2, 4\]",
        ),
        (
            {"num_workers": 4, "parallel": {"tensor": 4}},
            r"tensor \(4\) must divide the key/value heads \(model.n_kv_head\) \(2\).*use one of \[1, 2\]",
        ),
        ({"num_workers": 2, "zero_stage": 3, "parallel": {"pipeline": 2}}, r"ZeRO stage 3 .*set training.zero_stage=1"),
        ({"num_workers": 2, "zero_stage": 0, "parallel": {"tensor": 2}}, r"zero_stage=0 .*set training.zero_stage=1"),
        ({"num_workers": 2, "compile": True, "parallel": {"tensor": 2}}, r"set training.compile=false"),
    ],
)
def test_bad_layouts_are_refused_before_workers_start(overrides, match):
    with pytest.raises(TrainingConfigError, match=match):
        check_training(TrainingConfig(**overrides), LLAMA, "cpu", "fp32")


def test_good_layouts_pass():
    for p, t, w in [(2, 1, 2), (1, 2, 2), (2, 2, 4), (2, 2, 8), (4, 2, 8)]:
        check_training(
            TrainingConfig(num_workers=w, micro_batch_size=2, parallel={"pipeline": p, "tensor": t}),
            LLAMA,
            "cpu",
            "fp32",
        )


def test_a_3d_checkpoint_resumes_only_on_its_own_number_of_ranks():
    cfg = TrainingConfig(num_workers=4, micro_batch_size=2, global_batch_size=8, parallel={"pipeline": 2, "tensor": 2})
    manifest = {
        "world_size": 4,
        "step": 4,
        "global_batch": 8,
        "precision": "fp32",
        "parallel": {"pipeline": 2, "tensor": 2},
        "data": {"samples": 32, "manifest_sha256": "x"},
        "model": LLAMA.model_dump(mode="json"),
        "training": cfg.model_dump(mode="json"),
    }
    assert resume_problems(manifest, cfg, LLAMA, 4, "x", "fp32") == []
    bigger = cfg.model_copy(update={"num_workers": 8})
    problems = resume_problems(manifest, bigger, LLAMA, 8, "x", "fp32")
    assert any("resume on training.num_workers=4" in p for p in problems)
    relaid = TrainingConfig(**{**cfg.model_dump(), "parallel": {"pipeline": 4, "tensor": 1}})
    assert any("parallel.pipeline 2 -> 4" in p for p in resume_problems(manifest, relaid, LLAMA, 4, "x", "fp32"))

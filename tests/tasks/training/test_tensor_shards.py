"""The tensor-parallel shards on two real gloo processes: a sharded block computes the
whole block's output and, in the backward pass, its input gradient and every weight's
gradient (joined from the shards), for a fused QKV with grouped-query heads and a gated
MLP, with and without biases."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from models.config import ModelConfig
from models.gpt import Block
from tasks.training.launch import free_port

SHAPES = {
    "llama": ModelConfig(
        n_layer=1, n_head=4, n_kv_head=2, d_model=16, norm="rmsnorm", activation="swiglu", position="rope", bias=False
    ),
    "gpt2-alibi": ModelConfig(n_layer=1, n_head=4, d_model=16, position="alibi"),
}


def _rank(rank: int, port: int, shape: str, out: dict) -> None:
    from tasks.training.parallel.tensor import join, shard_block

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        cfg = SHAPES[shape]
        full = Block(cfg, seq_len=8)
        for p in full.parameters():  # biases and gains away from 0 and 1, so a lost one shows
            torch.nn.init.normal_(p, std=0.3)
        x = torch.randn(2, 8, cfg.d_model)
        shard = Block(cfg, seq_len=8)
        shard.load_state_dict(full.state_dict())
        shard_block(shard, rank, 2, dist.group.WORLD)
        assert sum(p.numel() for p in shard.parameters()) < sum(p.numel() for p in full.parameters())
        xs = x.clone().requires_grad_(True)
        y = shard(xs)
        y.square().sum().backward()
        xf = x.clone().requires_grad_(True)
        want = full(xf)
        want.square().sum().backward()
        problems = []
        if not torch.allclose(y, want, atol=1e-5):
            problems.append(f"output differs by {(y - want).abs().max():.3g}")
        if not torch.allclose(xs.grad, xf.grad, atol=1e-4):
            problems.append(f"input gradient differs by {(xs.grad - xf.grad).abs().max():.3g}")
        grads = dict(full.named_parameters())
        for name, p in shard.named_parameters():
            g = p.grad
            if hasattr(p, "unshard"):
                parts = [torch.empty_like(g) for _ in range(2)]
                dist.all_gather(parts, g.contiguous())
                g = join(parts, p.unshard)
            if not torch.allclose(g, grads[name].grad, atol=1e-4):
                problems.append(f"{name}: gradient differs by {(g - grads[name].grad).abs().max():.3g}")
        out[rank] = problems
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_sharded_block_computes_the_whole_block_and_its_gradients(shape):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(free_port(), shape, out), nprocs=2, join=True)
        assert dict(out) == {0: [], 1: []}

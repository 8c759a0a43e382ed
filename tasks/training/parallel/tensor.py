"""Tensor parallelism, Megatron-LM style: each block's attention is split by heads and its
MLP by hidden units, over the T ranks of a tensor-parallel group.

- Attention: the fused QKV projection is column-parallel. Each rank keeps the rows of its
  n_head/T query heads and its n_kv_head/T key/value heads (grouped-query attention keeps
  each query group with its own key/value head), so attention runs locally. The output
  projection is row-parallel: its partial sums are all-reduced.
- MLP: `up` (and the gate of SwiGLU/GeGLU) column-parallel, `down` row-parallel.
- Embeddings, norms and the output head stay whole on every rank: their gradients come
  out identical on the T ranks, because each sees the same (all-reduced) activations.

Why our own layers rather than DeepSpeed's AutoTP or torch's DTensor `parallelize_module`:
AutoTP guesses the split from layer names and, for a fused QKV, needs the head layout
spelt out anyway; DTensor's plans do not split a fused QKV with grouped-query heads
without rewriting the module. Two autograd functions and a slicing rule per weight are
short, exact, and run on gloo (CPU) as on NCCL. Each sharded parameter records how its
shards join again (`unshard`), which checkpoints' export and the final model use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from models.gpt import GPT, Block


class _CopyToShards(torch.autograd.Function):
    """Identity forward; the backward sums the input's gradient over the group (each
    shard contributed a part of it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class _SumShards(torch.autograd.Function):
    """All-reduce forward (partial sums of a row-parallel product); identity backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        x = x.contiguous().clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


@dataclass(frozen=True)
class Unshard:
    """How a parameter's shards join: `dim` 0 for rows, 1 for columns; `parts` splits the
    rows into groups that are each sharded on their own (the fused QKV: q, k, v)."""

    dim: int
    parts: tuple[int, ...] = ()


def _mark(p: nn.Parameter, how: Unshard) -> None:
    p.unshard = how  # type: ignore[attr-defined]  # a mark on the tensor, read back by hasattr
    p.tensor_model_parallel = True  # type: ignore[attr-defined]  # DeepSpeed counts it on every rank in the grad norm


def _rows(weight: torch.Tensor, parts: list[int], rank: int, size: int) -> torch.Tensor:
    """This rank's slice of each group of rows, concatenated."""
    chunks = weight.split(parts, dim=0)
    return torch.cat([c.chunk(size, dim=0)[rank] for c in chunks], dim=0)


class ColumnParallelLinear(nn.Module):
    """`copy_input` False: the caller already passed the input through _CopyToShards (two
    projections of one input share it: one all-reduce of its gradient, not two)."""

    def __init__(self, full: nn.Linear, parts: list[int], rank: int, size: int, group, copy_input: bool = True):
        super().__init__()
        self.group, self.copy_input = group, copy_input
        self.weight = nn.Parameter(_rows(full.weight.detach(), parts, rank, size).clone())
        _mark(self.weight, Unshard(0, tuple(parts) if len(parts) > 1 else ()))
        self.bias = None
        if full.bias is not None:
            self.bias = nn.Parameter(_rows(full.bias.detach(), parts, rank, size).clone())
            _mark(self.bias, Unshard(0, tuple(parts) if len(parts) > 1 else ()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.copy_input:
            x = _CopyToShards.apply(x, self.group)
        return F.linear(x, self.weight, self.bias)


class RowParallelLinear(nn.Module):
    def __init__(self, full: nn.Linear, rank: int, size: int, group):
        super().__init__()
        self.group = group
        self.weight = nn.Parameter(full.weight.detach().chunk(size, dim=1)[rank].clone())
        _mark(self.weight, Unshard(1))
        # The bias is added once, after the sum: it stays whole on every rank.
        self.bias = None if full.bias is None else nn.Parameter(full.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _SumShards.apply(F.linear(x, self.weight), self.group)
        return y if self.bias is None else y + self.bias


def shard_block(block: Block, rank: int, size: int, group) -> None:
    """Replace `block`'s attention and MLP projections by this rank's shards, in place."""
    attn, cfg = block.attn, block.attn.cfg
    q_rows = cfg.n_head * cfg.head_dim
    # add_module, as assignment would, swaps each nn.Linear for its shard under the same name.
    attn.add_module("qkv", ColumnParallelLinear(attn.qkv, [q_rows, attn.kv_rows, attn.kv_rows], rank, size, group))
    attn.add_module("proj", RowParallelLinear(attn.proj, rank, size, group))
    attn.n_head, attn.n_kv_head = cfg.n_head // size, cfg.kv_heads // size
    attn.kv_rows = attn.n_kv_head * cfg.head_dim
    heads = slice(rank * attn.n_head, (rank + 1) * attn.n_head)
    for name in ("alibi", "slopes"):  # ALiBi's per-head tables follow the heads
        if hasattr(attn, name):
            attn.register_buffer(name, getattr(attn, name)[heads].clone(), persistent=False)
    mlp = block.mlp
    hidden = mlp.up.out_features
    mlp.add_module("up", ColumnParallelLinear(mlp.up, [hidden], rank, size, group, copy_input=False))
    if mlp.gate is not None:
        mlp.add_module("gate", ColumnParallelLinear(mlp.gate, [hidden], rank, size, group, copy_input=False))
    mlp.add_module("down", RowParallelLinear(mlp.down, rank, size, group))
    # `up` and the gate read one input: one _CopyToShards before both (a pre-hook keeps the
    # MLP's own forward, and its parameter names, unchanged).
    mlp.register_forward_pre_hook(lambda module, args: (_CopyToShards.apply(args[0], group), *args[1:]))


def shard_model(model: GPT, rank: int, size: int, group) -> GPT:
    """Shard every block of a whole model (built identically on each rank) for tensor rank `rank`."""
    for block in model.blocks:
        shard_block(cast(Block, block), rank, size, group)  # GPT.blocks holds only Blocks
    return model


def join(shards: list[torch.Tensor], how: Unshard) -> torch.Tensor:
    """The whole tensor from the shards of every tensor rank, in rank order."""
    if how.dim == 1:
        return torch.cat(shards, dim=1)
    if not how.parts:
        return torch.cat(shards, dim=0)
    local_parts = [n // len(shards) for n in how.parts]
    pieces = [s.split(local_parts, dim=0) for s in shards]
    return torch.cat([pieces[r][i] for i in range(len(how.parts)) for r in range(len(shards))], dim=0)


def unshard(local: torch.Tensor, how: Unshard, group, size: int) -> torch.Tensor:
    """The whole tensor from this rank's shard (a collective over the tensor group)."""
    shards = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(shards, local.contiguous(), group=group)
    return join(shards, how)

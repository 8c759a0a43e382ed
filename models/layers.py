"""Building blocks for the configurable transformer: norms, MLPs and position encodings."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.config import GATED, ModelConfig


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich, 2019): no centring, no bias."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 for the statistic: bf16's 8-bit mantissa loses small activations here.
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swiglu": F.silu,
    "geglu": F.gelu,
}


class MLP(nn.Module):
    """Position-wise feed-forward; the gated variants (GLU, Shazeer 2020) add a gate projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.act = _ACTIVATIONS[cfg.activation]
        self.gated = cfg.activation in GATED
        self.up = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=cfg.bias)
        self.gate = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=cfg.bias) if self.gated else None
        self.down = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.gate(x)) * self.up(x) if self.gate is not None else self.act(self.up(x))
        return self.drop(self.down(h))


def sinusoidal_table(seq_len: int, dim: int) -> torch.Tensor:
    """The fixed (seq_len, dim) encoding of Vaswani et al. (2017)."""
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(seq_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (seq_len, head_dim), for rotary embeddings (Su et al., 2021)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv)
    angles = torch.cat([angles, angles], dim=-1)  # half-split layout, as Llama in transformers
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (b, heads, t, head_dim) queries or keys by position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).type_as(x)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Per-head slopes of ALiBi (Press et al., 2022), including non-power-of-two head counts."""

    def powers(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(powers(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    return torch.tensor(powers(closest) + powers(2 * closest)[0::2][: n_head - closest])


def alibi_causal_bias(n_head: int, seq_len: int) -> torch.Tensor:
    """(heads, t, t) additive attention bias: -slope * distance, and -inf above the diagonal."""
    pos = torch.arange(seq_len)
    distance = (pos[:, None] - pos[None, :]).float()
    bias = -alibi_slopes(n_head)[:, None, None] * distance
    return bias.masked_fill(distance < 0, float("-inf"))

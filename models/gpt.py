"""A configurable GPT-style decoder-only transformer (see models/config.py for the choices).

Single-device PyTorch only; parallelism (DeepSpeed, Ray) is applied from outside.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.config import ModelConfig
from models.fused_loss import linear_cross_entropy
from models.kv_cache import KVCache, LayerCache
from models.layers import MLP, alibi_causal_bias, alibi_slopes, apply_rope, make_norm, rope_tables, sinusoidal_table


class CausalSelfAttention(nn.Module):
    # Buffers, registered only for the position encodings that use them.
    cos: torch.Tensor
    sin: torch.Tensor
    alibi: torch.Tensor
    slopes: torch.Tensor

    def __init__(self, cfg: ModelConfig, seq_len: int):
        super().__init__()
        self.cfg = cfg
        # The heads this module computes: all of them here; a tensor-parallel shard
        # (tasks/training/parallel/tensor.py) keeps a slice and lowers these counts.
        self.n_head, self.n_kv_head = cfg.n_head, cfg.kv_heads
        # One fused projection: rows are all query heads, then key heads, then value heads.
        self.kv_rows = cfg.kv_heads * cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * self.kv_rows, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        # Derived tables are buffers, not parameters: rebuilt from the config, never saved.
        if cfg.position == "rope":
            cos, sin = rope_tables(seq_len, cfg.head_dim, cfg.rope_theta)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
        if cfg.position == "alibi":
            self.register_buffer("alibi", alibi_causal_bias(cfg.n_head, seq_len), persistent=False)
            self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        key_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`mask`: optional bool (b, 1, t, t), True = may attend; None = plain causal attention.
        `positions`: optional (b, t) position of each token, when it is not its index.
        `cache`: keys and values of earlier tokens, extended with these; `mask` is then
        (b, 1, t, earlier + t) and `key_positions` (b, earlier + t) the keys' positions."""
        b, t, _ = x.shape
        cfg, heads, kv_heads = self.cfg, self.n_head, self.n_kv_head
        q_rows, kv_rows = heads * cfg.head_dim, kv_heads * cfg.head_dim
        q, k, v = self.qkv(x).split([q_rows, kv_rows, kv_rows], dim=-1)
        q = q.view(b, t, heads, cfg.head_dim).transpose(1, 2)  # (b, heads, t, hd)
        k = k.view(b, t, kv_heads, cfg.head_dim).transpose(1, 2)  # (b, kv_heads, t, hd)
        v = v.view(b, t, kv_heads, cfg.head_dim).transpose(1, 2)
        if cfg.position == "rope":
            cos, sin = (
                (self.cos[:t], self.sin[:t])
                if positions is None
                else (self.cos[positions][:, None], self.sin[positions][:, None])
            )
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # cached before the grouped-query repeat: kv_heads, not heads
            k, v = cache.extend(k, v)
        if kv_heads != heads:  # grouped-query attention: each kv head serves a group
            k = k.repeat_interleave(heads // kv_heads, dim=1)
            v = v.repeat_interleave(heads // kv_heads, dim=1)
        dropout = cfg.dropout if self.training else 0.0
        if cfg.position == "alibi":
            if positions is None:
                bias = self.alibi[:, :t, :t].to(q.dtype)  # already -inf above the diagonal
            else:  # -slope * distance between the tokens' positions; `mask` then says who sees whom
                keys = positions if key_positions is None else key_positions
                distance = (positions[:, None, :, None] - keys[:, None, None, :]).to(q.dtype)
                bias = -self.slopes.to(q.dtype)[None, :, None, None] * distance
            if mask is not None:  # broadcasts to (b, heads, t, t)
                bias = bias.masked_fill(~mask, float("-inf"))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        elif mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        else:  # is_causal lets SDPA pick its fused kernels without materializing a mask
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        return self.proj(y.transpose(1, 2).reshape(b, t, q_rows))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, seq_len: int):
        super().__init__()
        self.pre = cfg.norm_placement == "pre"
        self.ln1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, seq_len)
        self.ln2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        key_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        kw = {"mask": mask, "positions": positions, "cache": cache, "key_positions": key_positions}
        if self.pre:  # GPT-2 onwards: normalize each sublayer's input, keep the residual clean
            x = x + self.drop(self.attn(self.ln1(x), **kw))
            return x + self.mlp(self.ln2(x))
        # The original Transformer: normalize after adding each sublayer's output.
        x = self.ln1(x + self.drop(self.attn(x, **kw)))
        return self.ln2(x + self.mlp(x))


class GPT(nn.Module):
    pos_table: torch.Tensor  # a buffer, with sinusoidal positions only

    def __init__(self, cfg: ModelConfig, vocab_size: int, seq_len: int):
        super().__init__()
        self.cfg, self.vocab_size, self.seq_len = cfg, vocab_size, seq_len
        self.tok_emb = nn.Embedding(vocab_size, cfg.d_model)
        if cfg.position == "learned":
            self.pos_emb = nn.Embedding(seq_len, cfg.d_model)
        if cfg.position == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(seq_len, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, seq_len) for _ in range(cfg.n_layer))
        # Post-LN blocks already end in a norm.
        self.ln_f = make_norm(cfg) if cfg.norm_placement == "pre" else nn.Identity()
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        # Recompute each block in the backward pass instead of storing its activations
        # (set by the trainer: a training choice, not part of the architecture).
        self.checkpoint_activations = False
        for name, param in self.named_parameters():
            self.init_parameter(name, param)

    def init_parameter(self, name: str, param: torch.Tensor) -> None:
        """GPT-2's initialisation of one parameter, drawn from torch's global generator.

        One parameter at a time, in `named_parameters()` order, so a trainer that holds
        parameters sharded (ZeRO-3) can gather each in turn and get the same values."""
        with torch.no_grad():
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() == 1:  # norm gains
                param.fill_(1.0)
            elif name.endswith(("proj.weight", "down.weight")):
                param.normal_(mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))
            else:
                param.normal_(mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def packed_logits(
        self, idx: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits for rows that pack several sequences sharing a prefix (a context, then each
        of its continuations): `positions` (b, t) restart after the shared prefix for each
        continuation, and `mask` (b, t, t) says which tokens each token sees. The result
        equals running each prefix+continuation on its own, with the prefix computed once.
        `keep` (b, t) bool, optional: return only those positions' logits, (n, vocab) in row
        order, so the output layer runs only where a score is read."""
        if int(positions.max()) >= self.seq_len:
            raise ValueError(f"position {int(positions.max())} exceeds the model's context of {self.seq_len}")
        x = self.tok_emb(idx)
        if self.cfg.position == "learned":
            x = x + self.pos_emb(positions)
        elif self.cfg.position == "sinusoidal":
            x = x + self.pos_table[positions].to(x.dtype)
        for block in self.blocks:
            x = block(x, mask=mask[:, None], positions=positions)
        return self.head(self.ln_f(x if keep is None else x[keep]))

    def decode(self, idx: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Next-token logits (b, vocab) after new tokens `idx` (b, t), extending `cache`.

        `positions` (b, t) are the new tokens' positions; `mask` (b, t, earlier + t) bool
        says which cached and new tokens each new token sees (left padding is masked out)."""
        if int(positions.max()) >= self.seq_len:
            raise ValueError(f"position {int(positions.max())} exceeds the model's context of {self.seq_len}")
        key_positions = cache.extend_positions(positions)
        x = self.tok_emb(idx)
        if self.cfg.position == "learned":
            x = x + self.pos_emb(positions)
        elif self.cfg.position == "sinusoidal":
            x = x + self.pos_table[positions].to(x.dtype)
        for block, layer in zip(self.blocks, cache.layers):
            x = block(x, mask=mask[:, None], positions=positions, cache=layer, key_positions=key_positions)
        return self.head(self.ln_f(x[:, -1]))

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token (and absolute position) embeddings of (b, t) ids, after dropout.

        Positions are not reset per document of a packed row: they stay identical to the
        unmasked run, and only attention is restricted (see `document_mask`)."""
        t = idx.shape[1]
        if t > self.seq_len:
            raise ValueError(f"sequence of {t} tokens exceeds the model's context of {self.seq_len}")
        x = self.tok_emb(idx)
        if self.cfg.position == "learned":
            x = x + self.pos_emb(torch.arange(t, device=idx.device))
        elif self.cfg.position == "sinusoidal":
            x = x + self.pos_table[:t].to(x.dtype)
        return self.drop(x)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
        z_loss: float = 0.0,
    ) -> torch.Tensor:
        """Logits (b, t, vocab) for token ids (b, t); with `targets` (b, t), the mean
        next-token loss instead, through the fused head (models/fused_loss.py), plus
        `z_loss` x the mean squared log-partition when set.

        `segments` (b, t), optional: each position's document index within its row
        (non-decreasing, e.g. 0 0 0 1 1 2); attention then stays inside each document.
        """
        x = self.hidden(idx, segments)
        if targets is not None:
            return linear_cross_entropy(x, self.head.weight, targets, z_loss=z_loss)
        return self.head(x)

    def hidden(self, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """The final normalized hidden states (b, t, d_model): the output head's input."""
        mask = None if segments is None else document_mask(segments)  # built once, shared by every layer
        x = self.embed(idx)
        for block in self.blocks:
            if self.checkpoint_activations and torch.is_grad_enabled():
                x = checkpoint(block, x, mask, use_reentrant=False)
            else:
                x = block(x, mask=mask)
        return self.ln_f(x)


def document_mask(segments: torch.Tensor) -> torch.Tensor:
    """(b, 1, t, t) bool, True = may attend: causal, and only within a token's own document
    (`segments` (b, t): each position's document index within its row)."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    return causal & (segments[:, None, :, None] == segments[:, None, None, :])

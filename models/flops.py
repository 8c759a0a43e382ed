"""Exact parameter and FLOP counts of a configured model, from its shapes alone.

Training FLOPs per token are three times the forward pass (the backward pass costs two),
and the forward pass is two FLOPs per multiply-accumulate: every weight matrix, the output
head, and attention's score and value products over the full context (as PaLM's MFU
definition counts them).
"""

from __future__ import annotations

from models.config import GATED, ModelConfig


def parameter_count(cfg: ModelConfig, vocab_size: int, seq_len: int) -> int:
    d, kv = cfg.d_model, 2 * cfg.kv_heads * cfg.head_dim
    hidden = cfg.mlp_hidden
    n_mats = 3 if cfg.activation in GATED else 2
    attn = d * d + d * kv + d * d + (d + kv + d if cfg.bias else 0)
    mlp = n_mats * d * hidden + ((n_mats - 1) * hidden + d if cfg.bias else 0)
    norm = d * (2 if cfg.norm == "layernorm" and cfg.bias else 1)
    per_layer = attn + mlp + 2 * norm
    final_norm = norm if cfg.norm_placement == "pre" else 0
    return cfg.n_layer * per_layer + final_norm + embedding_parameters(cfg, vocab_size, seq_len)


def embedding_parameters(cfg: ModelConfig, vocab_size: int, seq_len: int) -> int:
    """Token (and learned position) embeddings, plus an untied output head: the parameters
    Kaplan et al.'s non-embedding count leaves out."""
    d = cfg.d_model
    return vocab_size * d * (1 if cfg.tie_embeddings else 2) + (seq_len * d if cfg.position == "learned" else 0)


def matmul_weights(cfg: ModelConfig, vocab_size: int) -> int:
    """Weights that multiply activations in a forward pass (embedding lookups excluded)."""
    d = cfg.d_model
    n_mats = 3 if cfg.activation in GATED else 2
    per_layer = 2 * d * d + d * 2 * cfg.kv_heads * cfg.head_dim + n_mats * d * cfg.mlp_hidden
    return cfg.n_layer * per_layer + vocab_size * d


def forward_flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> int:
    attention = cfg.n_layer * 4 * seq_len * cfg.d_model  # QK^T and AV
    return 2 * matmul_weights(cfg, vocab_size) + attention


def training_flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> int:
    return 3 * forward_flops_per_token(cfg, vocab_size, seq_len)

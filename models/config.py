"""Typed configuration of the decoder-only transformer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NormPlacement = Literal["pre", "post"]
Norm = Literal["layernorm", "rmsnorm"]
Activation = Literal["gelu", "relu", "silu", "swiglu", "geglu"]
Position = Literal["learned", "sinusoidal", "rope", "alibi"]
GATED = ("swiglu", "geglu")


class ModelConfig(BaseModel):
    """Architecture choices. Vocabulary size and context length come from the tokenizer stage.

    Initialization (GPT-2): weights N(0, 0.02), biases zero, norms' gains one, and the output
    projection of every attention and MLP block scaled by 1/sqrt(2 * n_layer) so the residual
    stream's variance does not grow with depth.
    """

    model_config = ConfigDict(extra="forbid")

    n_layer: int = Field(4, ge=1, description="Transformer blocks.")
    n_head: int = Field(4, ge=1, description="Attention heads (must divide d_model).")
    n_kv_head: int | None = Field(None, ge=1, description="Key/value heads for grouped-query attention; None = n_head.")
    d_model: int = Field(256, ge=8, description="Width of the residual stream.")
    mlp_ratio: float = Field(4.0, gt=0, description="MLP hidden width / d_model.")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout on attention, MLP and embeddings (training.dropout overrides it)."
    )
    norm_placement: NormPlacement = Field(
        "pre", description="'pre': normalize each block's input (GPT-2); 'post': its output (the original transformer)."
    )
    norm: Norm = Field("layernorm", description="LayerNorm or RMSNorm.")
    norm_eps: float = Field(1e-5, gt=0, description="Epsilon of the norms.")
    activation: Activation = Field("gelu", description="MLP activation; swiglu and geglu are gated.")
    position: Position = Field(
        "learned", description="Position encoding: learned or sinusoidal embeddings, rotary (rope) or ALiBi biases."
    )
    rope_theta: float = Field(10_000.0, gt=0, description="rope: base of the rotary frequencies.")
    bias: bool = Field(True, description="Biases in linear layers and LayerNorm.")
    tie_embeddings: bool = Field(True, description="Share the token embedding with the output head.")

    @model_validator(mode="after")
    def _shapes(self) -> ModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.n_head % self.kv_heads:
            raise ValueError(f"n_kv_head ({self.kv_heads}) must divide n_head ({self.n_head})")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"rope needs an even head dimension, got {self.head_dim}")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_ratio * self.d_model)

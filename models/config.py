"""Typed configuration of the decoder-only transformer."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelConfig(BaseModel):
    """Architecture choices. Vocabulary size and context length come from the tokenizer stage."""

    model_config = ConfigDict(extra="forbid")

    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    d_model: int = Field(256, ge=8)
    mlp_ratio: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    norm_placement: Literal["pre"] = "pre"
    norm: Literal["layernorm"] = "layernorm"
    activation: Literal["gelu"] = "gelu"
    position: Literal["learned"] = "learned"
    tie_embeddings: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        return self

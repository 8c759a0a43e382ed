"""Typed configuration of the tokenization stage."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenizationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(8192, ge=260, le=1 << 20, description="BPE vocabulary incl. specials.")
    min_frequency: int = Field(2, ge=1)
    train_sample_bytes: int = Field(
        20_000_000, ge=1, description="Curated text sampled to train the BPE."
    )
    seq_len: int = Field(256, ge=8, description="Tokens per packed training sequence.")
    val_fraction: float = Field(0.01, gt=0, lt=0.5, description="Documents held out, by id hash.")
    eos_token: str = "<|endoftext|>"

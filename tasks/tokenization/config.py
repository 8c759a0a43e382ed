"""Typed configuration of the tokenization stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TokenizationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenizer_path: str | None = Field(
        None,
        description="An existing tokenizer.json to reuse instead of training a BPE; it is "
        "copied into the run and must contain eos_token.",
    )
    vocab_size: int = Field(8192, ge=260, le=1 << 20, description="BPE vocabulary incl. specials.")
    min_frequency: int = Field(2, ge=1, description="BPE: least count of a pair to be merged.")
    train_sample_bytes: int = Field(
        20_000_000, ge=1, description="Curated training-split text sampled to train the BPE."
    )
    eos_token: str = Field(
        "<|endoftext|>", description="End-of-text token, appended after each document (id 0 in a trained tokenizer)."
    )
    special_tokens: list[str] = Field(
        default_factory=list, description="Further special tokens, after eos_token (ids 1, 2, ...)."
    )
    seq_len: int = Field(256, ge=8, description="Tokens per packed training sequence.")
    val_fraction: float = Field(0.01, gt=0, lt=0.5, description="Documents held out, by id hash.")
    batch_docs: int = Field(1024, ge=1, description="Documents encoded per tokenizer call.")
    mixture: dict[str, float] | None = Field(
        None,
        description="Sampling weight per document `source` (e.g. {web: 0.6, code: 0.4}); "
        "weights are normalised. None keeps every source at its natural share, each sequence "
        "once per epoch. A source given 0 is left out.",
    )

    @field_validator("mixture")
    @classmethod
    def _weights(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        bad = {k: w for k, w in v.items() if not w >= 0}
        if bad:
            raise ValueError(f"mixture weights must be >= 0, got {bad}")
        if not sum(v.values()) > 0:
            raise ValueError("mixture weights are all 0: give at least one source a positive weight")
        return v

    @model_validator(mode="after")
    def _specials(self) -> TokenizationConfig:
        if self.eos_token in self.special_tokens or len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError("special_tokens must be distinct and must not repeat eos_token")
        return self

    def shard_fingerprint(self) -> dict:
        """The settings that change what the token shards hold (not the mixture: it is applied when read)."""
        return self.model_dump(exclude={"mixture", "batch_docs"})

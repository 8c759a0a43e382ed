"""Typed configuration of the training stage."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_workers: int = Field(2, ge=1, description="Ray Train workers (data-parallel ranks).")
    micro_batch_size: int = Field(8, ge=1, description="Sequences per rank per micro-step.")
    grad_accum_steps: int = Field(1, ge=1)
    max_steps: int = Field(300, ge=1, description="Optimizer steps.")
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decays to lr * this.")
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, gt=0)
    zero_stage: int = Field(1, ge=0, le=2, description="ZeRO stage 0-2 (stage 3 export is not supported yet).")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto",
        description="'auto': bf16 where the hardware computes it natively (recent GPUs, CPUs with "
        "AVX512-BF16/AMX), else fp32 on CPU and fp16 on older GPUs.",
    )
    checkpoint_every: int = Field(100, ge=1, description="Save a checkpoint every N steps.")
    eval_every: int = Field(50, ge=1, description="Validation loss every M steps.")
    eval_batches: int = Field(8, ge=1, description="Validation micro-batches per rank.")
    seed: int = 1234
    document_mask: bool = Field(
        False, description="Keep attention inside each document of a packed sequence.")
    verify_shards: Literal["full", "size"] = Field(
        "full", description="At start, check token shards against the manifest: 'full' SHA-256 "
        "(each rank hashes its share of the files) or 'size' and Arrow footer only.")
    max_failures: int = Field(1, ge=0, description="Ray Train restarts from the last checkpoint.")

    @model_validator(mode="after")
    def _warmup(self) -> "TrainingConfig":
        if self.warmup_steps >= self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be below max_steps ({self.max_steps})"
            )
        return self

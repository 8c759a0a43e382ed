"""Typed configuration of the evaluation stage."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    perplexity_max_rows: int = Field(512, ge=1, description="Validation rows scored.")
    hellaswag_path: str | None = Field(
        "../shared/benchmarks/hellaswag/validation.jsonl",
        description="HellaSwag JSONL in the Hugging Face schema; skipped (with a message) if absent.",
    )
    hellaswag_limit: int = Field(200, ge=1, description="First N items are scored.")
    batch_size: int = Field(16, ge=1)

    def benchmark_files(self) -> list[str]:
        """The benchmark files this config evaluates on (curation decontaminates against them)."""
        return [p for p in (self.hellaswag_path,) if p]

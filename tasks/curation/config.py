"""Typed configuration of the curation stage."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class QualityRules(BaseModel):
    """First heuristic quality rules (Gopher/C4-style thresholds)."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(50, ge=0, description="Drop documents with fewer words.")
    max_words: int = Field(200_000, ge=1)
    min_mean_word_length: float = Field(2.5, ge=0)
    max_mean_word_length: float = Field(12.0, gt=0)
    max_symbol_word_ratio: float = Field(0.1, ge=0, description="'#' and '...' per word.")
    min_alpha_word_fraction: float = Field(0.6, ge=0, le=1, description="Words with a letter.")
    max_duplicate_line_fraction: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> "QualityRules":
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ValueError("min_mean_word_length exceeds max_mean_word_length")
        return self


class CurationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_path: str = Field(
        "demo",
        description="Folder or file of JSONL/Parquet documents (.gz/.zst accepted); "
        "'demo' builds and uses the built-in demo corpus.",
    )
    text_field: str = "text"
    id_field: str = "id"
    normalization: Literal["NFC", "NFKC"] = "NFC"
    exact_dedup: bool = True
    quality: QualityRules = QualityRules()
    redact_emails: bool = True
    redact_ips: bool = True
    email_token: str = "<EMAIL>"
    ip_token: str = "<IP_ADDRESS>"

"""Typed configuration of the curation stage: one section per step, each switchable."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.curation.decontam import DecontamConfig
from tasks.curation.filters.registry import DEFAULT_FILTERS, check_filter_names
from tasks.curation.noise import NoiseConfig
from tasks.curation.quality_model import QualityClassifierConfig
from tasks.curation.redact import RedactionConfig
from tasks.curation.rules import HeuristicsConfig
from tasks.curation.substring_dedup import SubstringDedupConfig
from tasks.curation.web.config import WebConfig


class ExactDedupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Remove documents whose text repeats an earlier document's.")
    near_exact: bool = Field(
        True, description="Also treat texts equal up to case, punctuation and spacing as duplicates."
    )


class MinHashConfig(BaseModel):
    """Near-duplicate removal; the defaults are FineWeb's (5-word shingles, 14 bands x 8 rows)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Remove near-duplicates found by MinHash LSH.")
    shingle_size: int = Field(5, ge=1, le=10, description="Words per shingle.")
    bands: int = Field(
        14, ge=1, le=64, description="LSH bands: a pair sharing all rows of one band becomes a candidate."
    )
    rows: int = Field(8, ge=1, le=32, description="MinHash values per band (bands x rows hashes per document).")
    seed: int = Field(1, description="Seed of the MinHash permutations.")
    min_similarity: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Candidate pairs from the LSH buckets count as duplicates only "
        "if the exact Jaccard of their shingle sets reaches this (0 keeps every candidate).",
    )


class CurationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_path: str = Field(
        "demo",
        description="Folder or file of JSONL/Parquet documents (.gz/.zst accepted), WARC/WET files "
        "(.warc, .warc.gz, .wet, .wet.gz) or folders of HTML pages; 'demo' builds and uses the built-in "
        "demo corpus, 'web-demo' the web demo's WARC files (tasks/corpus/web_demo.py).",
    )
    text_field: str = Field("text", description="The JSONL field or Parquet column holding a document's text.")
    id_field: str = Field("id", description="The JSONL field or Parquet column holding a document's id.")
    max_record_bytes: int = Field(
        32 << 20,
        ge=1024,
        description="A JSONL line or Parquet row larger than this is not read into memory: it is "
        "counted as record_too_large in curated/removed/ (web pages have web.extraction.max_page_bytes).",
    )
    normalization: Literal["NFC", "NFKC"] = Field(
        "NFC", description="Unicode normalization form applied to the text kept."
    )
    repair_text: bool | None = Field(
        None,
        description="Mend mojibake, decode left-over HTML entities and remove soft hyphens and zero-width "
        "spaces in the text kept (tasks/curation/repair.py); None: on for web input (WARC/WET/HTML), off for "
        "JSONL/Parquet. Dedup and decontamination keys are repaired either way.",
    )
    web: WebConfig = Field(
        WebConfig(),
        description="WARC/WET/HTML input: URL filter, main-text "
        "extraction, language identification (FineWeb's order), before the rules.",
    )
    noise: NoiseConfig | None = Field(
        None,
        description="Plant labelled duplicates, PII and spam into the input first "
        "(demo and benchmarks); the labels are written to curated/noise_labels.jsonl.",
    )
    filters: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FILTERS),
        description="The per-document filters of the filter pass, in the order they run "
        f"(default: {', '.join(DEFAULT_FILTERS)}); a document two of them would remove is counted under "
        "the first one's reason. A filter left out does not run; one listed but switched off in its own "
        "section (quality_classifier.enabled, decontamination.enabled) stays off. Names: "
        "tasks/curation/filters/registry.py.",
    )
    heuristics: HeuristicsConfig = Field(
        HeuristicsConfig(),
        description="The heuristic rules (Gopher, C4, FineWeb, page furniture) and their per-language settings.",
    )
    quality_classifier: QualityClassifierConfig = Field(
        QualityClassifierConfig(),
        description="A fastText classifier of high- against low-quality text; documents scored below its "
        "threshold are removed.",
    )
    decontamination: DecontamConfig = Field(
        DecontamConfig(), description="Training documents sharing an n-gram with a benchmark are removed or flagged."
    )
    exact_dedup: ExactDedupConfig = Field(ExactDedupConfig(), description="Document-level exact deduplication.")
    minhash: MinHashConfig = Field(
        MinHashConfig(),
        description="Near-duplicate removal; the defaults are FineWeb's (5-word shingles, 14 bands x 8 rows).",
    )
    substring_dedup: SubstringDedupConfig = Field(
        SubstringDedupConfig(),
        description="Cut spans of min_tokens words or more that occurred earlier in the corpus "
        "(boilerplate, footers, licence notices) from the documents dedup kept; off by default.",
    )
    redaction: RedactionConfig = Field(
        RedactionConfig(), description="PII found in the text kept is replaced by a token per type."
    )
    partition_docs: int = Field(
        250_000,
        ge=1000,
        description="Documents per dedup key range: bounds each dedup task's memory (about 85 "
        "bytes a document), so larger corpora get more ranges rather than bigger ones.",
    )
    dedup_tasks: int = Field(
        0,
        ge=0,
        description="Tasks each global dedup step and finalize run at most, each working through "
        "its share of the key ranges (partition_docs documents each) or shards one after the other; "
        "0: twice the Ray cluster's CPUs. Bounded by the cluster rather than the corpus, so that "
        "the files the tasks open grow with the corpus, not with its square.",
    )
    incremental: bool = Field(
        False,
        description="Curate only the input files that are new or changed since the previous run "
        "(previous_run, or a served deployment's newest finished run) and deduplicate them against "
        "everything curated before: a repeat of last week's document is removed this week too.",
    )

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, v: list[str]) -> list[str]:
        return check_filter_names(v)

    @model_validator(mode="after")
    def _incremental_needs_stable_input(self) -> CurationConfig:
        if self.incremental and self.noise is not None:
            raise ValueError(
                "curation.incremental compares input files with the previous run's, but "
                "curation.noise rewrites them every run; turn one of them off"
            )
        return self

"""Typed configuration of curation's web front end: URL filter, main-text extraction, language."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Words that, as a whole word of a URL (split on anything not a letter or digit), mark a page
# as adult or gambling content, RefinedWeb's "hard" words. A short default that a user extends.
DEFAULT_BLOCKED_WORDS = (
    "porn",
    "porno",
    "xxx",
    "sex",
    "sexcam",
    "escort",
    "escorts",
    "hentai",
    "casino",
    "camgirl",
    "camgirls",
    "nsfw",
)


class UrlFilterConfig(BaseModel):
    """RefinedWeb's approach: a block list of domains, and words that may not appear in a URL."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Remove pages whose URL is on the block lists.")
    blocked_domains: list[str] = Field(
        default_factory=list, description="Domains whose pages are removed, with all their subdomains."
    )
    blocked_domains_file: str | None = Field(
        None,
        description="A text file of more blocked domains, one per line (# starts a comment), "
        "e.g. the UT1 blacklist's adult/domains.",
    )
    blocked_words: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED_WORDS),
        description="Words that, as a whole word of a URL (split on anything not a letter or digit), remove its page.",
    )

    @field_validator("blocked_domains", "blocked_words")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.strip().lower().rstrip(".") for x in v if x.strip()]


class ExtractionConfig(BaseModel):
    """Main-text extraction: Resiliparse (DCLM's choice) or trafilatura (FineWeb's and datatrove's).

    Resiliparse is the default. On the web benchmark's 2,943 documentation pages its words
    matched each page's own main-content markup as well as trafilatura's did (mean F1 0.885
    against 0.887, benchmarks/web_extraction_quality.py), at 24 times the speed; extraction is
    nearly all of the web front end's time. Models trained on either extractor's text score
    alike on standard tasks (Li et al. 2026, "Beyond a Single Extractor", arXiv:2602.19548),
    and Resiliparse keeps tables and code better."""

    model_config = ConfigDict(extra="forbid")

    extractor: Literal["resiliparse", "trafilatura"] = Field(
        "resiliparse", description="Main-text extractor: resiliparse (DCLM's) or trafilatura (FineWeb's)."
    )
    favor_precision: bool = Field(True, description="trafilatura: less text, but less boilerplate.")
    # Off by default, unlike datatrove: trafilatura's deduplication drops text segments it has
    # seen before in the same process, in any page, so a page's text would depend on which pages
    # a worker happened to extract before it. Repeated text is removed by dedup and C4's rules.
    deduplicate: bool = Field(False, description="trafilatura: drop text segments already seen in the process.")
    include_tables: bool = Field(True, description="Keep the text of tables.")
    max_page_bytes: int = Field(
        2_000_000,
        ge=1,
        description="Larger pages (HTML, or a WET record's text) are removed as "
        "`page_too_large`, without being read into memory or parsed.",
    )
    timeout_s: float = Field(
        10.0,
        ge=0,
        description="A page whose extraction takes longer is removed as `extraction_timeout` "
        "(0: no limit). Enforced with a timer signal where extraction runs in a main thread, as in Ray tasks.",
    )


class LanguageConfig(BaseModel):
    """Language identification with py3langid, whose model ships inside its package."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Identify each page's language and keep only the languages in keep.")
    keep: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes to keep.")
    threshold: float = Field(
        0.65, ge=0, le=1, description="Least probability of a kept language (FineWeb keeps English at 0.65)."
    )
    all_inputs: bool = Field(False, description="Also identify and filter JSONL/Parquet documents, not only web pages.")


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_filter: UrlFilterConfig = Field(
        UrlFilterConfig(), description="RefinedWeb's URL filter: blocked domains and words."
    )
    extraction: ExtractionConfig = Field(ExtractionConfig(), description="Main-text extraction from HTML.")
    language: LanguageConfig = Field(LanguageConfig(), description="Language identification with py3langid.")

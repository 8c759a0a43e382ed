"""Typed configuration of curation's web front end: URL filter, main-text extraction, language."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Words that, as a whole word of a URL (split on anything not a letter or digit), mark a page
# as adult or gambling content, RefinedWeb's "hard" words. A short default that a user extends.
DEFAULT_BLOCKED_WORDS = ("porn", "porno", "xxx", "sex", "sexcam", "escort", "escorts", "hentai", "casino",
                         "camgirl", "camgirls", "nsfw")


class UrlFilterConfig(BaseModel):
    """RefinedWeb's approach: a block list of domains, and words that may not appear in a URL."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    blocked_domains: list[str] = Field(
        default_factory=list, description="Domains whose pages are removed, with all their subdomains.")
    blocked_domains_file: str | None = Field(
        None, description="A text file of more blocked domains, one per line (# starts a comment), "
        "e.g. the UT1 blacklist's adult/domains.")
    blocked_words: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_WORDS))

    @field_validator("blocked_domains", "blocked_words")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.strip().lower().rstrip(".") for x in v if x.strip()]


class ExtractionConfig(BaseModel):
    """trafilatura's `extract`, with datatrove's settings as defaults."""

    model_config = ConfigDict(extra="forbid")

    favor_precision: bool = Field(True, description="Less text, but less boilerplate.")
    deduplicate: bool = Field(True, description="trafilatura drops repeated text segments within a page.")
    include_tables: bool = True
    max_page_bytes: int = Field(
        2_000_000, ge=1, description="Larger pages are removed as `page_too_large` rather than parsed.")


class LanguageConfig(BaseModel):
    """Language identification with py3langid, whose model ships inside its package."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    keep: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes to keep.")
    threshold: float = Field(0.65, ge=0, le=1, description="Least probability of a kept language "
                             "(FineWeb keeps English at 0.65).")
    all_inputs: bool = Field(False, description="Also identify and filter JSONL/Parquet documents, "
                             "not only web pages.")


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_filter: UrlFilterConfig = UrlFilterConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    language: LanguageConfig = LanguageConfig()

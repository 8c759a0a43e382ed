"""Unicode normalization applied before any rule sees the text."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

# C0/C1 control characters other than tab and newline carry no text and confuse tokenizers.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def normalize_text(text: str, form: Literal["NFC", "NFD", "NFKC", "NFKD"] = "NFC") -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize(form, _CONTROL.sub("", text)).strip()


def dedup_key(text: str) -> str:
    """The text exact dedup compares: case- and whitespace-insensitive."""
    return " ".join(text.lower().split())

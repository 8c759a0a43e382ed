"""Text repair: undo what crawls do to text before anything compares or keeps it.

Two copies of one article, one of them read with the wrong charset (UTF-8 bytes decoded as
cp1252: "café" -> "cafÃ©"), with its HTML entities left encoded ("&#8217;"), set in
full-width forms ("ｆｕｌｌ") or sprinkled with soft hyphens and zero-width spaces, share few
5-word shingles, so exact and near-duplicate removal keep both. Repair puts them back
together. It has two strengths:

- `repair_text`, for the text a document keeps (curation.repair_text): ftfy mends mojibake
  and decodes HTML entities; soft hyphens, zero-width spaces, word joiners and byte-order
  marks are removed. Nothing a reader would see changes: curly quotes, ligatures,
  full-width forms (normal in Chinese and Japanese text) and the zero-width joiners that
  Persian, Indic scripts and emoji sequences need are left as they are.
- `key_text`, for what dedup and decontamination compare (always): the repaired text,
  then NFKC (full-width and compatibility forms fold to their plain letters, ligatures
  split) with every zero-width character removed. Keys are never written out, so this may
  lose what a reader would want kept.

Most text needs neither: ASCII text without '&' is returned as it is, and ftfy (about
6 MB/s) runs only on text with an entity or with a pair of characters that UTF-8 read as
cp1252 or Latin-1 always produces. Both fixes are idempotent, so repaired text keys alike.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy

# Kept text: fix the charset and the entities, and nothing a reader would notice.
_FTFY = ftfy.TextFixerConfig(
    unescape_html=True,  # extracted text is not HTML: "&amp;" in it is a left-over entity
    uncurl_quotes=False,
    fix_character_width=False,
    fix_latin_ligatures=False,
    fix_line_breaks=False,  # normalize_text does this for every document
    explain=False,
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# A UTF-8 lead byte (U+00C2..U+00F4 when read as cp1252 or Latin-1) followed by a
# continuation byte read the same way (U+0080..U+00BF, or cp1252's letters and punctuation
# in 0x80..0xBF). Every mojibaked non-ASCII character has one; prose rarely does ("à»").
_CP1252_HIGH = (
    "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]")
# Invisible characters with no job in running text: soft hyphen, zero-width space, word
# joiner, byte-order mark (a zero-width no-break space inside text).
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff"))
# Keys also drop the joiners (ZWNJ, ZWJ) that kept text needs in some scripts.
_INVISIBLE_IN_KEYS = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))


def repair_text(text: str) -> str:
    """``text`` with mojibake mended, HTML entities decoded and invisible characters removed."""
    if text.isascii():
        if "&" not in text or _ENTITY.search(text) is None:
            return text
        return ftfy.fix_text(text, _FTFY)
    if ("&" in text and _ENTITY.search(text) is not None) or _MOJIBAKE.search(text) is not None:
        text = ftfy.fix_text(text, _FTFY)
    return text.translate(_INVISIBLE)


def key_text(text: str) -> str:
    """What dedup and decontamination compare: repaired, NFKC, without zero-width characters."""
    return fold_repaired(repair_text(text))


def fold_repaired(repaired: str) -> str:
    """key_text of text repair_text has already mended (repair is not run twice)."""
    if repaired.isascii():
        return repaired
    key = _fold(repaired)
    # NFKC can turn a character into one that repair reads anew: U+00A8 becomes a space and a
    # combining diaeresis, and the mojibake pair after it is then mended. Repeat until the key
    # is stable, so that a key's key is itself (text NFKC leaves alone needs no second round).
    for _ in range(3):
        if key == repaired or (again := _fold(repair_text(key))) == key:
            break
        repaired, key = key, again
    return key


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE_IN_KEYS)

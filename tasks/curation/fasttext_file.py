"""A check of a fastText .bin file's header and dictionary before fastText reads it.

fastText's loader reads each dictionary word up to its NUL byte without checking for the end
of the file: a model cut short inside its dictionary makes `fasttext.load_model` append EOF
characters to a string forever (hundreds of MB within seconds, never returning). Walking the
same layout here first, bounded by the file's size, turns that into an error naming the file.

Layout (fastText 0.9, format version 12): int32 magic, int32 version; the arguments (12
int32 and a float64, 56 bytes); the dictionary: int32 size, int32 words, int32 labels,
int64 tokens, int64 pruned-index size, then `size` entries of (word, NUL, int64 count,
int8 type) and the pruned index's int32 pairs; then the matrices.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = 793712314
VERSIONS = (12,)  # what fastText 0.9 writes; older layouts differ
ARGS_BYTES = 56
MAX_WORD_BYTES = 1 << 20  # fastText's own words are a few dozen bytes; a megabyte is not a word


class FastTextFileError(ValueError):
    """The file is not a whole fastText model; the message names it and the fix."""


def check_model_file(path: Path, fix: str) -> None:
    """Raise FastTextFileError unless `path` holds a fastText header and a whole dictionary."""
    path = Path(path)
    size = path.stat().st_size

    def bad(why: str) -> FastTextFileError:
        return FastTextFileError(f"{path} is not a whole fastText model: {why}; {fix}")

    with open(path, "rb") as f:
        head = f.read(8 + ARGS_BYTES + 28)
        if len(head) < 8:
            raise bad(f"{size} bytes, shorter than a header")
        magic, version = struct.unpack_from("<ii", head)
        if magic != MAGIC:
            raise FastTextFileError(f"{path} is not a fastText model file (its first bytes are not fastText's); {fix}")
        if version not in VERSIONS:
            raise bad(f"format version {version}, not one of {VERSIONS}")
        if len(head) < 8 + ARGS_BYTES + 28:
            raise bad(f"{size} bytes, cut inside its header")
        entries, words, labels, _tokens, pruned = struct.unpack_from("<iiiqq", head, 8 + ARGS_BYTES)
        if entries < 0 or words < 0 or labels < 0 or words + labels != entries or pruned < -1:
            raise bad(f"its dictionary header is inconsistent ({entries} entries, {words} words, {labels} labels)")
        # Each entry needs at least its NUL, count and type: a count the file cannot hold is
        # known before reading any of them.
        if entries * 10 > size:
            raise bad(f"its dictionary claims {entries} entries, more than {size} bytes can hold")
        buf, pos = b"", 0

        def more(i: int) -> bytes:
            chunk = f.read(1 << 20)
            if not chunk:
                raise bad(f"{size} bytes, cut inside its dictionary (entry {i} of {entries})")
            return chunk

        for i in range(entries):
            while (end := buf.find(b"\0", pos)) < 0:
                if len(buf) - pos > MAX_WORD_BYTES:
                    raise bad(f"dictionary entry {i} has no end within {MAX_WORD_BYTES} bytes")
                buf, pos = buf[pos:] + more(i), 0
            pos = end + 1 + 9  # the word's NUL, then int64 count and int8 type
            while len(buf) < pos:
                buf += more(i)

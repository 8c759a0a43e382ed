"""The train/validation split: by a hash of the document id, the same on every run."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val")


def split_of(doc_id: str, val_fraction: float) -> str:
    """`val` for about `val_fraction` of ids, else `train`; independent of order and sharding."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")
    return "val" if h / 2**64 < val_fraction else "train"

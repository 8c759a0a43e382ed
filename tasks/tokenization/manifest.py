"""The token-shard manifest: files with counts and checksums, totals, tokenizer figures, mixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.core.storage import sha256_file
from tasks.tokenization.bpe import load_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.mixture import plan_mixture
from tasks.tokenization.shards import SCHEMA_VERSION, token_dtype
from tasks.tokenization.split import SPLITS

COUNTS = ("docs", "text_bytes", "tokens", "rows", "padding_tokens", "dropped_eos")


def _sum(entries: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(e[k] for e in entries) for k in COUNTS}


def build_manifest(entries: list[dict[str, Any]], tokenizer_path: Path, cfg: TokenizationConfig) -> dict[str, Any]:
    """Totals per split and per source, the tokenizer's figures and the training mixture plan."""
    tok = load_tokenizer(tokenizer_path)
    splits = {s: _sum([e for e in entries if e["split"] == s]) for s in SPLITS}
    for split, t in splits.items():
        if t["rows"] == 0:
            raise ValueError(
                f"the {split} split has no tokens ({t['docs']} documents); give more data or "
                f"raise tokenization.val_fraction"
            )
        if split == "train" and t["tokens"] < cfg.seq_len + 1:
            raise ValueError(
                f"the train split has {t['tokens']} tokens, less than one sequence of {cfg.seq_len + 1}; "
                f"give more data or lower tokenization.seq_len"
            )
    sources = {
        split: {
            src: _sum([e for e in entries if e["split"] == split and e["source"] == src])
            for src in sorted({e["source"] for e in entries if e["split"] == split})
        }
        for split in SPLITS
    }
    train = sources["train"]
    val = splits["val"]
    return {
        "schema": SCHEMA_VERSION,
        "tokenizer_sha256": sha256_file(tokenizer_path),
        "vocab_size": tok.get_vocab_size(),
        "eos_id": tok.token_to_id(cfg.eos_token),
        "special_tokens": {t: tok.token_to_id(t) for t in (cfg.eos_token, *cfg.special_tokens)},
        "seq_len": cfg.seq_len,
        "row_len": cfg.seq_len + 1,
        "dtype": token_dtype(tok.get_vocab_size()).name,
        # Held-out text: validation documents were never in the BPE's training sample.
        # Their EOS tokens are not text, so they are left out of the ratio.
        "tokenizer": {
            "vocab_size": tok.get_vocab_size(),
            "reused": cfg.tokenizer_path is not None,
            "val_bytes_per_token": val["text_bytes"] / max(1, val["tokens"] + val["dropped_eos"] - val["docs"]),
        },
        "splits": splits,
        "sources": sources,
        "mixture": plan_mixture(
            {s: t["rows"] for s, t in train.items()}, {s: t["tokens"] for s, t in train.items()}, cfg.mixture
        ),
        "shards": sorted(entries, key=lambda e: e["file"]),
    }

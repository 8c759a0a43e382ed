"""Token shards: packed fixed-length sequences in Arrow IPC files, and their manifest.

Each row holds `seq_len + 1` tokens so that inputs (row[:-1]) and next-token targets
(row[1:]) come from one row. Documents are joined with EOS; the tokens left over at the
end of a shard (fewer than one row) are counted in the manifest, not hidden.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import torch

from infra.storage import atomic_path, read_json, sha256_file
from tasks.tokenization.bpe import load_tokenizer
from tasks.tokenization.config import TokenizationConfig

SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every token id."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def split_of(doc_id: str, val_fraction: float) -> str:
    """Deterministic split by id hash, so a document lands in the same split on every run."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")
    return "val" if h / 2**64 < val_fraction else "train"


def write_token_shard(tokens: np.ndarray, row_len: int, dest: Path) -> int:
    """Pack `tokens` into rows of `row_len`, write them, and return the number of rows."""
    rows = len(tokens) // row_len
    flat = pa.array(tokens[: rows * row_len])
    table = pa.table({"tokens": pa.FixedSizeListArray.from_arrays(flat, row_len)})
    with atomic_path(dest) as tmp:
        with ipc.new_file(str(tmp), table.schema) as writer:
            writer.write_table(table)
    return rows


def tokenize_shard(curated: Path, index: int, tokenizer_path: Path, cfg: TokenizationConfig,
                   out_dir: Path) -> list[dict[str, Any]]:
    """Tokenize one curated shard into one Arrow shard per split; return manifest entries."""
    tok = load_tokenizer(tokenizer_path)
    eos = tok.token_to_id(cfg.eos_token)
    dtype = token_dtype(tok.get_vocab_size())
    streams: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    docs = {s: 0 for s in SPLITS}
    text_bytes = {s: 0 for s in SPLITS}
    for batch in pq.ParquetFile(curated).iter_batches(batch_size=512, columns=["id", "text"]):
        ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
        for doc_id, text, enc in zip(ids, texts, tok.encode_batch(texts, add_special_tokens=False)):
            split = split_of(doc_id, cfg.val_fraction)
            streams[split].append(np.asarray(enc.ids + [eos], dtype=dtype))
            docs[split] += 1
            text_bytes[split] += len(text.encode("utf-8"))
    entries = []
    row_len = cfg.seq_len + 1
    for split in SPLITS:
        tokens = np.concatenate(streams[split]) if streams[split] else np.zeros(0, dtype=dtype)
        dest = out_dir / split / f"part-{index:05d}.arrow"
        rows = write_token_shard(tokens, row_len, dest)
        entries.append({
            "split": split, "file": str(dest.relative_to(out_dir)), "source_shard": curated.name,
            "docs": docs[split], "text_bytes": text_bytes[split], "rows": rows,
            "tokens": int(len(tokens)), "tail_tokens_dropped": int(len(tokens) - rows * row_len),
            "sha256": sha256_file(dest),
        })
    return entries


def build_manifest(entries: list[dict[str, Any]], tokenizer_path: Path, cfg: TokenizationConfig) -> dict[str, Any]:
    tok = load_tokenizer(tokenizer_path)
    totals = {s: {k: sum(e[k] for e in entries if e["split"] == s)
                  for k in ("docs", "text_bytes", "rows", "tokens", "tail_tokens_dropped")}
              for s in SPLITS}
    for split, t in totals.items():
        if t["rows"] == 0:
            raise ValueError(
                f"the {split} split has no full sequence of {cfg.seq_len + 1} tokens "
                f"({t['tokens']} tokens from {t['docs']} documents); give more data, lower "
                f"tokenization.seq_len, or raise tokenization.val_fraction"
            )
    return {
        "tokenizer_sha256": sha256_file(tokenizer_path),
        "vocab_size": tok.get_vocab_size(),
        "eos_id": tok.token_to_id(cfg.eos_token),
        "seq_len": cfg.seq_len,
        "row_len": cfg.seq_len + 1,
        "dtype": token_dtype(tok.get_vocab_size()).name,
        "splits": totals,
        "shards": sorted(entries, key=lambda e: e["file"]),
    }


@dataclass
class TokenShards:
    """Rows of one split, read memory-mapped: only the rows used are paged in."""

    arrays: list[np.ndarray]  # one (rows, row_len) array per shard
    offsets: np.ndarray  # first global row index of each shard

    @classmethod
    def open(cls, shard_dir: Path, split: str, verify: bool = False) -> "TokenShards":
        manifest = read_json(shard_dir / "manifest.json")
        arrays = []
        for entry in manifest["shards"]:
            if entry["split"] != split or entry["rows"] == 0:
                continue
            path = shard_dir / entry["file"]
            if verify and sha256_file(path) != entry["sha256"]:
                raise ValueError(f"{path}: checksum differs from the manifest; re-run `crucible tokenize`")
            table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
            col = table.column("tokens").combine_chunks()
            arrays.append(col.values.to_numpy(zero_copy_only=True).reshape(-1, manifest["row_len"]))
        offsets = np.cumsum([0] + [len(a) for a in arrays])
        return cls(arrays, offsets)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def row(self, i: int) -> np.ndarray:
        s = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.arrays[s][i - self.offsets[s]]

    def rows(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self.row(int(i)) for i in indices])

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (row[:-1]) and next-token targets (row[1:]) as int64 tensors."""
        data = torch.from_numpy(self.rows(indices).astype(np.int64))
        return data[:, :-1], data[:, 1:]

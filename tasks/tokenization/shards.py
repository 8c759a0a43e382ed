"""Writing token shards: packed fixed-length rows in Arrow IPC files, one per split and source.

Each row holds `seq_len + 1` tokens so that inputs (row[:-1]) and next-token targets
(row[1:]) come from one row. Documents of one source are joined with EOS and packed
across rows; the last row of a file is padded and its `length` says how many tokens are
real, so no token is dropped. `doc_starts` lists, per row, where documents begin, so
training can keep attention inside a document. Rows of different sources never mix: the
mixture is applied when rows are sampled (tasks/training/data.py).
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from infra.storage import atomic_path, sha256_file
from tasks.tokenization.bpe import load_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.split import split_of

SCHEMA_VERSION = 2


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every token id."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def source_dir(source: str) -> str:
    """A folder name for a `source` value: readable, and distinct for distinct sources."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)[:64] or "_"
    safe = "_" + safe[1:] if safe.startswith(".") else safe  # never hidden, never `..`
    if safe != source:
        safe = f"{safe}-{hashlib.blake2b(source.encode('utf-8'), digest_size=4).hexdigest()}"
    return safe


def pack_rows(docs: list[np.ndarray], row_len: int, pad_id: int) -> tuple[pa.Table, dict[str, int]]:
    """Pack documents (each already ending in EOS) into rows; returns the table and its counts."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    stream = np.concatenate(docs) if docs else np.zeros(0, dtype=np.uint16)
    n = len(stream)
    dropped = 0
    if n % row_len == 1:
        # A lone final token is the last document's EOS: it has no target, so it is left out.
        stream, n, dropped = stream[:-1], n - 1, 1
    rows = -(-n // row_len)
    padded = np.full(rows * row_len, pad_id, dtype=stream.dtype)
    padded[:n] = stream
    valid = np.full(rows, row_len, dtype=np.int32)
    if rows and n % row_len:
        valid[-1] = n % row_len
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(docs) else np.zeros(0, np.int64)
    starts = starts[starts < n]
    row_of = starts // row_len
    offsets = np.searchsorted(row_of, np.arange(rows + 1)).astype(np.int32)
    table = pa.table({
        "tokens": pa.FixedSizeListArray.from_arrays(pa.array(padded), row_len),
        "length": pa.array(valid),
        "doc_starts": pa.ListArray.from_arrays(pa.array(offsets), pa.array((starts % row_len).astype(np.int32))),
    })
    counts = {"docs": len(docs), "tokens": int(n), "rows": int(rows),
              "padding_tokens": int(rows * row_len - n), "dropped_eos": dropped}
    return table, counts


def write_table(table: pa.Table, dest: Path, metadata: dict[str, str]) -> None:
    """One Arrow IPC file with one record batch, written atomically."""
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    with atomic_path(dest) as tmp:
        with ipc.new_file(str(tmp), table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))


def tokenize_shard(curated: Path, index: int, tokenizer_path: Path, cfg: TokenizationConfig,
                   out_dir: Path) -> list[dict[str, Any]]:
    """Tokenize one curated shard into one Arrow file per split and source; return manifest entries."""
    tok = load_tokenizer(tokenizer_path)
    eos = tok.token_to_id(cfg.eos_token)
    dtype = token_dtype(tok.get_vocab_size())
    docs: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    text_bytes: dict[tuple[str, str], int] = defaultdict(int)
    columns = ["id", "text", "source"]
    reader = pq.ParquetFile(curated)
    if "source" not in reader.schema_arrow.names:
        columns.remove("source")
    for batch in reader.iter_batches(batch_size=cfg.batch_docs, columns=columns):
        ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
        sources = batch.column("source").to_pylist() if "source" in columns else [None] * len(ids)
        for doc_id, text, source, enc in zip(ids, texts, sources, tok.encode_batch(texts, add_special_tokens=False)):
            key = (split_of(doc_id, cfg.val_fraction), source or "unknown")
            arr = np.empty(len(enc.ids) + 1, dtype=dtype)
            arr[:-1] = enc.ids
            arr[-1] = eos
            docs[key].append(arr)
            text_bytes[key] += len(text.encode("utf-8"))
    metadata = {"crucible_schema": str(SCHEMA_VERSION), "vocab_size": str(tok.get_vocab_size()),
                "row_len": str(cfg.seq_len + 1), "tokenizer_sha256": sha256_file(tokenizer_path)}
    entries = []
    for (split, source), parts in sorted(docs.items()):
        table, counts = pack_rows(parts, cfg.seq_len + 1, eos)
        dest = out_dir / split / source_dir(source) / f"part-{index:05d}.arrow"
        write_table(table, dest, metadata)
        entries.append({"split": split, "source": source, "file": str(dest.relative_to(out_dir)),
                        "source_shard": curated.name, "text_bytes": text_bytes[(split, source)],
                        **counts, "bytes": dest.stat().st_size, "sha256": sha256_file(dest)})
    return entries

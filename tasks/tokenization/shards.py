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
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from infra.core.storage import atomic_path, sha256_file
from tasks.tokenization.bpe import load_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.split import split_of

SCHEMA_VERSION = 2


def file_version(path: Path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=2)
def cached_tokenizer(path: str, size: int, mtime_ns: int) -> Tokenizer:
    """One tokenizer per worker process, reused by its tasks: its BPE cache of words already
    split stays warm (13% of encoding time in benchmarks/tokenization_throughput.py)."""
    return load_tokenizer(Path(path))


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


def arrow_view(arr: np.ndarray) -> pa.Array:
    """A zero-copy Arrow array over a 1-d numpy array (pa.array would also import pandas)."""
    arr = np.ascontiguousarray(arr)
    return pa.Array.from_buffers(pa.from_numpy_dtype(arr.dtype), len(arr), [None, pa.py_buffer(arr)])


def pack_rows(
    stream: np.ndarray, doc_lengths: np.ndarray, row_len: int, pad_id: int
) -> tuple[pa.Table, dict[str, int]]:
    """Pack documents (concatenated in `stream`, each ending in EOS) into rows; returns the
    table and its counts."""
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
    starts = np.cumsum(doc_lengths) - doc_lengths
    starts = starts[starts < n]
    offsets = np.searchsorted(starts // row_len, np.arange(rows + 1)).astype(np.int32)
    table = pa.Table.from_arrays(
        [
            pa.FixedSizeListArray.from_arrays(arrow_view(padded), row_len),
            arrow_view(valid),
            pa.ListArray.from_arrays(arrow_view(offsets), arrow_view((starts % row_len).astype(np.int32))),
        ],
        names=["tokens", "length", "doc_starts"],
    )
    counts = {
        "docs": len(doc_lengths),
        "tokens": int(n),
        "rows": int(rows),
        "padding_tokens": int(rows * row_len - n),
        "dropped_eos": dropped,
    }
    return table, counts


def utf8_lengths(texts: pa.Array) -> np.ndarray:
    """Bytes per string, read from the array's offsets (no per-document Python work)."""
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(texts.buffers()[1], dtype=width)[texts.offset : texts.offset + len(texts) + 1]
    return np.diff(offsets)


def encode_with_eos(tok, texts: list[str], eos: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """All documents' ids, each followed by EOS, in one array; and each document's length."""
    ids = [e.ids for e in tok.encode_batch_fast(texts, add_special_tokens=False)]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)) + 1
    out = np.full(int(lengths.sum()), eos, dtype=dtype)
    body = np.ones(len(out), dtype=bool)
    body[np.cumsum(lengths) - 1] = False  # EOS positions
    out[body] = np.fromiter(chain.from_iterable(ids), dtype=dtype, count=len(out) - len(ids))
    return out, lengths


def write_table(table: pa.Table, dest: Path, metadata: dict[str, str]) -> None:
    """One Arrow IPC file with one record batch, written atomically."""
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    # The file is ours to close: if the writer fails (a full disk), its descriptor would stay
    # open with the exception's traceback and keep the deleted file's space taken.
    with atomic_path(dest) as tmp, pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))


def tokenize_shard(
    curated: Path, index: int, tokenizer_path: Path, cfg: TokenizationConfig, out_dir: Path
) -> list[dict[str, Any]]:
    """Tokenize one curated shard into one Arrow file per split and source; return manifest entries."""
    tok = cached_tokenizer(str(tokenizer_path), *file_version(tokenizer_path))
    eos = tok.token_to_id(cfg.eos_token)
    if eos is None:  # prepare_tokenizer checked it: only a tokenizer swapped since would lack it
        raise ValueError(f"tokenizer {tokenizer_path} has no {cfg.eos_token!r} token (tokenization.eos_token)")
    dtype = token_dtype(tok.get_vocab_size())
    parts: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    text_bytes: dict[tuple[str, str], int] = defaultdict(int)
    columns = ["id", "text", "source"]
    reader = pq.ParquetFile(curated)
    if "source" not in reader.schema_arrow.names:
        columns.remove("source")
    for batch in reader.iter_batches(batch_size=cfg.batch_docs, columns=columns):
        ids = batch.column("id").to_pylist()
        sources = batch.column("source").to_pylist() if "source" in columns else [None] * len(ids)
        keys = [(split_of(i, cfg.val_fraction), s or "unknown") for i, s in zip(ids, sources)]
        nbytes = utf8_lengths(batch.column("text"))
        tokens, lengths = encode_with_eos(tok, batch.column("text").to_pylist(), eos, dtype)
        distinct = sorted(set(keys))
        code = np.array([distinct.index(k) for k in keys]) if len(distinct) > 1 else np.zeros(len(keys), int)
        token_code = np.repeat(code, lengths)
        for c, key in enumerate(distinct):
            docs = code == c
            parts[key].append((tokens[token_code == c] if len(distinct) > 1 else tokens, lengths[docs]))
            text_bytes[key] += int(nbytes[docs].sum())
    metadata = {
        "crucible_schema": str(SCHEMA_VERSION),
        "vocab_size": str(tok.get_vocab_size()),
        "row_len": str(cfg.seq_len + 1),
        "tokenizer_sha256": sha256_file(tokenizer_path),
    }
    entries = []
    for (split, source), chunks in sorted(parts.items()):
        table, counts = pack_rows(
            np.concatenate([t for t, _ in chunks]), np.concatenate([n for _, n in chunks]), cfg.seq_len + 1, eos
        )
        dest = out_dir / split / source_dir(source) / f"part-{index:05d}.arrow"
        write_table(table, dest, metadata)
        entries.append(
            {
                "split": split,
                "source": source,
                "file": str(dest.relative_to(out_dir)),
                "source_shard": curated.name,
                "text_bytes": text_bytes[(split, source)],
                **counts,
                "bytes": dest.stat().st_size,
                "sha256": sha256_file(dest),
            }
        )
    return entries

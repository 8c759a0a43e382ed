"""Reading token shards memory-mapped, with every file checked against the manifest first.

Opening maps each Arrow file and validates its size, footer, schema and (optionally) its
SHA-256; rows are then gathered straight from the mapped pages, so a reader's memory does
not grow with the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch

from infra.core.storage import RunDir, read_json, sha256_file
from tasks.tokenization.shards import SCHEMA_VERSION

Verify = Literal["full", "size"]
IGNORE = -100  # target id the loss skips (models/fused_loss.py)
RETOKENIZE = "re-run `crucible tokenize` for this run (finished shards are kept, bad ones rebuilt)"


class ShardError(ValueError):
    """A token shard or manifest that cannot be used as it is; the message names the file and the fix."""


def read_manifest(shard_dir: Path) -> dict[str, Any]:
    path = Path(shard_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no token shards: {path} not found; run `crucible tokenize` for this run first")
    manifest = read_json(path)
    if manifest.get("schema") != SCHEMA_VERSION:
        raise ShardError(
            f"{path} was written by an older version of Crucible (schema "
            f"{manifest.get('schema', 1)}, expected {SCHEMA_VERSION}); {RETOKENIZE}"
        )
    return manifest


def check_tokenizer_matches(manifest: dict[str, Any], tokenizer_path: Path, shard_dir: Path) -> None:
    """The tokenizer a model is trained or evaluated with must be the one the shards were made with."""
    if not Path(tokenizer_path).is_file():
        raise FileNotFoundError(f"tokenizer {tokenizer_path} not found; {RETOKENIZE}")
    if sha256_file(tokenizer_path) != manifest["tokenizer_sha256"]:
        from tasks.tokenization.bpe import load_tokenizer

        vocab = load_tokenizer(Path(tokenizer_path)).get_vocab_size()
        raise ShardError(
            f"tokenizer {tokenizer_path} (vocabulary {vocab}) is not the one the shards in {shard_dir} "
            f"were made with (vocabulary {manifest['vocab_size']}); restore that tokenizer or {RETOKENIZE}"
        )


def _open_file(path: Path, entry: dict[str, Any], manifest: dict[str, Any], verify: Verify):
    if not path.is_file():
        raise ShardError(f"token shard {path} is missing; {RETOKENIZE}")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise ShardError(
            f"token shard {path} is {size} bytes, the manifest says {entry['bytes']} "
            f"(truncated or replaced); {RETOKENIZE}"
        )
    if verify == "full" and sha256_file(path) != entry["sha256"]:
        raise ShardError(f"token shard {path}: checksum differs from the manifest; {RETOKENIZE}")
    try:
        reader = ipc.open_file(pa.memory_map(str(path), "r"))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except (pa.ArrowInvalid, OSError) as exc:
        raise ShardError(f"token shard {path} is not a readable Arrow file ({exc}); {RETOKENIZE}") from None
    fields = {f.name: f.type for f in reader.schema}
    tokens_type = getattr(fields.get("tokens"), "value_type", None)
    if tokens_type != pa.from_numpy_dtype(np.dtype(manifest["dtype"])) or not {"length", "doc_starts"} <= fields.keys():
        raise ShardError(
            f"token shard {path} is not a token shard of {manifest['dtype']} tokens (its columns: "
            f"{', '.join(f'{k} {v}' for k, v in fields.items())}); {RETOKENIZE}"
        )
    meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
    if meta.get("tokenizer_sha256") != manifest["tokenizer_sha256"]:
        raise ShardError(f"token shard {path} was made with another tokenizer than the manifest's; {RETOKENIZE}")
    if len(batches) != 1 or batches[0].num_rows != entry["rows"]:
        raise ShardError(f"token shard {path} does not hold the {entry['rows']} rows the manifest lists; {RETOKENIZE}")
    b = batches[0]
    tokens = b.column("tokens").values.to_numpy(zero_copy_only=True).reshape(-1, manifest["row_len"])
    starts = b.column("doc_starts")
    return (
        tokens,
        b.column("length").to_numpy(zero_copy_only=True),
        starts.offsets.to_numpy(zero_copy_only=True),
        starts.values.to_numpy(zero_copy_only=True),
    )


def check_shards(run: RunDir) -> None:
    """What a training rank checks when it starts, for every split: the manifest, the tokenizer
    and each shard's size, footer, schema and rows. Each problem is a ShardError naming the fix."""
    manifest = read_manifest(run.shards)
    check_tokenizer_matches(manifest, run.tokenizer, run.shards)
    for split in sorted({e["split"] for e in manifest["shards"]}):
        TokenRows.open(run.shards, split, manifest=manifest)


@dataclass
class TokenRows:
    """The rows of one split (optionally one source), numbered 0..len-1 across its files."""

    tokens: list[np.ndarray]  # (rows, row_len) per file, memory-mapped
    lengths: list[np.ndarray]  # real tokens per row (only a file's last row may be short)
    starts: list[tuple[np.ndarray, np.ndarray]]  # per file: (row offsets, positions) of document starts
    offsets: np.ndarray  # first global row index of each file

    @classmethod
    def open(
        cls,
        shard_dir: Path,
        split: str,
        source: str | None = None,
        verify: Verify = "size",
        manifest: dict[str, Any] | None = None,
    ) -> TokenRows:
        manifest = manifest or read_manifest(shard_dir)
        opened = [
            _open_file(Path(shard_dir) / e["file"], e, manifest, verify)
            for e in manifest["shards"]
            if e["split"] == split and (source is None or e["source"] == source) and e["rows"]
        ]
        offsets = np.cumsum([0] + [len(o[0]) for o in opened])
        return cls([o[0] for o in opened], [o[1] for o in opened], [(o[2], o[3]) for o in opened], offsets)

    @classmethod
    def from_arrays(cls, rows: list[np.ndarray]) -> TokenRows:
        """Full rows with no document boundaries recorded (for tests and tools)."""
        empty = [(np.zeros(len(r) + 1, np.int32), np.zeros(0, np.int32)) for r in rows]
        return cls(
            rows, [np.full(len(r), r.shape[1], np.int32) for r in rows], empty, np.cumsum([0] + [len(r) for r in rows])
        )

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        f = np.searchsorted(self.offsets, indices, side="right") - 1
        return f, indices - self.offsets[f]

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (n, row_len) as int64 and real lengths (n,) of the given global rows."""
        f, local = self._locate(indices)
        out = np.empty((len(f), self.tokens[0].shape[1] if self.tokens else 0), dtype=np.int64)
        lengths = np.empty(len(f), dtype=np.int64)
        for file in np.unique(f):
            sel = np.flatnonzero(f == file)
            out[sel] = self.tokens[file][local[sel]]
            lengths[sel] = self.lengths[file][local[sel]]
        return out, lengths

    def segments(self, indices: np.ndarray) -> np.ndarray:
        """Per position, the index of the document it belongs to within its row (n, row_len)."""
        f, local = self._locate(indices)
        row_len = self.tokens[0].shape[1]
        marks = np.zeros((len(f), row_len), dtype=np.int64)
        for i, (file, r) in enumerate(zip(f, local)):
            offs, pos = self.starts[file]
            marks[i, pos[offs[r] : offs[r + 1]]] = 1
        marks[:, 0] = 0  # a row's first token belongs to segment 0 whether or not a document starts there
        return np.cumsum(marks, axis=1)


def to_batch(tokens: np.ndarray, lengths: np.ndarray, segments: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    """Inputs (row[:-1]), next-token targets (row[1:], padding set to IGNORE) and, if given, segments."""
    data = torch.from_numpy(tokens)
    x, y = data[:, :-1], data[:, 1:].clone()
    y[torch.arange(y.shape[1])[None, :] >= torch.from_numpy(lengths - 1)[:, None]] = IGNORE
    if segments is None:
        return x, y
    return x, y, torch.from_numpy(segments[:, :-1])

"""Where curation writes: schemas, paths, and a streaming Parquet writer.

curated/
  part-NNNNN.parquet              kept documents (id, text, source, metadata)
  removed/filter-part-*.parquet   documents removed by the per-document filters, with reason
  removed/dedup-part-*.parquet    documents removed as duplicates, with the kept one named
  stats.json                      (written by the flow)
  _work/                          scratch for the global steps; deleted when the stage ends
    markers/<step>-<n>.json       completion marker with the task's result (resume)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from infra.core.storage import atomic_path

CURATED_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("metadata", pa.string())]
)
WORK_SCHEMA = pa.schema([*CURATED_SCHEMA, ("bytes_in", pa.int64()), ("file", pa.string()), ("line", pa.int64())])
REMOVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("bytes", pa.int64()),
        ("url", pa.string()),
    ]  # web input: the page's URL; `line` is then the record's byte offset
)


# The layout of _work/ (one key file per shard, id files, routed pairs and edges): part of the
# scratch fingerprint, so scratch written by an older layout is discarded, not misread.
SCRATCH_LAYOUT = 2


@dataclass(frozen=True)
class CurationPaths:
    curated: Path

    @property
    def work(self) -> Path:
        return self.curated / "_work"

    def kept(self, shard: int) -> Path:
        return self.curated / f"part-{shard:05d}.parquet"

    def removed_filter(self, shard: int) -> Path:
        return self.curated / "removed" / f"filter-part-{shard:05d}.parquet"

    def removed_dedup(self, shard: int) -> Path:
        return self.curated / "removed" / f"dedup-part-{shard:05d}.parquet"

    def filtered(self, shard: int) -> Path:
        return self.work / "filtered" / f"part-{shard:05d}.parquet"

    def keys(self, shard: int) -> Path:
        """The shard's exact / near-exact and MinHash band keys (keyed_files.KEY_DTYPE)."""
        return self.work / "keys" / f"shard-{shard:05d}.npy"

    def shingle_sets(self, shard: int) -> Path:
        """Stem of the shard's shingle-set files (see ragged_files.py)."""
        return self.work / "shingles" / f"shard-{shard:05d}"

    def doc_ids(self, shard: int) -> Path:
        """Stem of the shard's document-id files, which name the kept document in removed/."""
        return self.work / "ids" / f"shard-{shard:05d}"

    def exact_drops(self, part: int) -> Path:
        return self.work / "exact-drops" / f"part-{part:05d}.npy"

    def substring_spans(self, shard: int) -> Path:
        return self.work / "substring-spans" / f"shard-{shard:05d}.npy"

    @property
    def candidates(self) -> Path:
        """MinHash candidate pairs, routed to the task that verifies them (routed_files.py)."""
        return self.work / "candidates"

    @property
    def components(self) -> Path:
        return self.work / "components"

    def minhash_drops(self, part: int) -> Path:
        return self.work / "minhash-drops" / f"part-{part:05d}.npy"

    @property
    def quality_model(self) -> Path:
        return self.curated / "quality_model.bin"

    @property
    def decontam_index(self) -> Path:
        return self.curated / "decontam_index.npz"

    @property
    def noise_input(self) -> Path:
        return self.work / "noisy-input"

    @property
    def noise_labels(self) -> Path:
        return self.curated / "noise_labels.jsonl"

    def marker(self, step: str, n: int = 0) -> Path:
        return self.work / "markers" / f"{step}-{n:05d}.json"


def scratch_usage(work: Path) -> dict[str, Any]:
    """Files and bytes the global steps wrote under _work/, per top folder: what curation
    shuffles between its tasks (the scratch shards in filtered/ included)."""
    folders: dict[str, dict[str, int]] = {}
    for path in work.rglob("*"):
        if path.is_file():
            row = folders.setdefault(path.relative_to(work).parts[0], {"files": 0, "bytes": 0})
            row["files"] += 1
            row["bytes"] += path.stat().st_size
    return {
        "files": sum(r["files"] for r in folders.values()),
        "bytes": sum(r["bytes"] for r in folders.values()),
        "by_folder": dict(sorted(folders.items())),
    }


class RowSink:
    """Rows streamed into a Parquet file in row groups; the file appears only on close()."""

    def __init__(self, dest: Path, schema: pa.Schema, group_rows: int = 2000):
        self.dest, self.schema, self.group_rows = dest, schema, group_rows
        self._atomic = atomic_path(dest)
        self._tmp = self._atomic.__enter__()
        # The file is ours to close: if the writer fails (a full disk), its descriptor would
        # stay open with the exception's traceback and keep the deleted file's space taken.
        self._file = pa.OSFile(str(self._tmp), "wb")
        self._writer = pq.ParquetWriter(self._file, schema)
        self._rows: list[dict[str, Any]] = []
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._file.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            self._writer.close()  # may fail again (a full disk): the temporary file goes anyway
        except OSError:
            pass
        finally:
            self._file.close()
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> RowSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()

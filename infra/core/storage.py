"""Atomic writes and run-directory layout.

Every output is written to a temporary file in the destination folder and renamed into
place, so a crash never leaves a half-written file under its final name and a re-run can
trust any file it finds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(dest: Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json(dest: Path, obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class RunDir:
    """The folder `runs/<run-id>/` that every stage reads from and writes to."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def removed(self) -> Path:
        return self.root / "curated" / "removed"

    @property
    def curation_stats(self) -> Path:
        return self.root / "curated" / "stats.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer" / "tokenizer.json"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def manifest(self) -> Path:
        return self.root / "shards" / "manifest.json"

    @property
    def tokenization_stats(self) -> Path:
        return self.root / "shards" / "stats.json"

    @property
    def train_events(self) -> Path:
        return self.root / "train_events.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def train_state(self) -> Path:
        return self.root / "checkpoints" / "train_state.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def train_summary(self) -> Path:
        return self.root / "train_summary.json"

    @property
    def eval_results(self) -> Path:
        return self.root / "eval" / "results.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def loss_curve(self) -> Path:
        return self.root / "loss_curve.png"

    @property
    def ray_storage(self) -> Path:
        return self.root / "ray_train"

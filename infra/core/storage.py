"""Atomic, durable writes and run-directory layout.

Every output is written to a temporary file in the destination folder and renamed into
place, so a crash never leaves a half-written file under its final name and a re-run can
trust any file it finds. The file is fsynced before the rename and its folder after: without
that, a power loss can publish the new name with no data behind it (a zero-length marker),
after retention has already deleted the older copy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DISK_FULL = ("No space left on device", "Disk quota exceeded")  # ENOSPC and EDQUOT as errors read


def disk_full(exc: BaseException) -> str | None:
    """The ENOSPC (or quota) error behind `exc`, as text, if a full disk is why it failed; a
    Ray task's or a flow run's error carries its cause's text only, so the text is read too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return next((marker for marker in DISK_FULL if marker in str(exc)), None)


LOW_SPACE = 1 << 20  # free bytes under which a failed write is taken for a full disk


def named_if_disk_full(exc: BaseException, folder: Path) -> BaseException:
    """`exc`, or an ENOSPC error naming it when the disk holding `folder` is (nearly) full.
    Some writers report a full disk without its errno: torch's zip writer as "unexpected pos"."""
    import shutil

    if disk_full(exc) is None and shutil.disk_usage(folder).free < LOW_SPACE:
        return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} while writing in {folder} ({exc})")
    return exc


def fsync_file(path: Path) -> None:
    """Flush a file's data to its disk (the file may have been written by another library)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to its disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder`, deepest first, and `folder` itself."""
    for path in sorted(Path(folder).rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink():
            continue
        (fsync_dir if path.is_dir() else fsync_file)(path)
    fsync_dir(folder)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; if the block succeeds, fsync it, rename it onto
    `dest` and fsync the folder, so the new name never points at data still in memory."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.replace(tmp_path, dest)
        fsync_dir(dest.parent)
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


def decode_utf8(data: bytes, path: Path, fix: str, encoding: str = "utf-8", first_line: int = 1) -> str:
    """`data` (read from `path`, from line `first_line` on) as text; bytes that are not UTF-8
    are an error naming the file, the line and the byte (Python's own names neither)."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        seen = exc.object  # what the codec decoded: utf-8-sig counts from after the BOM
        line = first_line + seen.count(b"\n", 0, exc.start)
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte {seen[exc.start]:#04x}); {fix}") from None


def read_utf8(path: Path, fix: str, encoding: str = "utf-8") -> str:
    return decode_utf8(Path(path).read_bytes(), path, fix, encoding)


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
    def eval_curves(self) -> Path:
        """training.eval_tasks' scores over the steps (tasks/report.py)."""
        return self.root / "eval_curves.png"

    @property
    def stop_request(self) -> Path:
        """Present while the command running this run asks its training to save and stop."""
        return self.root / "stop-requested"

    @property
    def ray_storage(self) -> Path:
        return self.root / "ray_train"

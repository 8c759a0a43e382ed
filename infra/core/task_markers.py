"""Resumable stages: completion markers per task and a fingerprint per stage's work folder.

Each task writes its outputs atomically, then a marker holding its result; a re-run finds
the marker and skips the task. A stage's fingerprint (its config and inputs) is kept in
its work folder, so work made from other inputs or settings is discarded, never reused.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.core.node import node_identity
from infra.core.storage import write_json

log = logging.getLogger(__name__)


def read_marker(path: Path) -> dict[str, Any] | None:
    """The result a finished task recorded, or None if it has not finished. A marker that
    cannot be read (left empty by a power loss before writes were fsynced, or damaged) counts
    as absent: the task is done again, rather than every resume failing on it."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); doing its work again", path, exc)
        return None
    return result if isinstance(result, dict) else None


def write_marker(path: Path, result: dict[str, Any]) -> None:
    write_json(path, result)


def once(
    marker: Path, work: Callable[[], dict[str, Any]], still_valid: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    """Run `work` unless its marker says it already finished (and its outputs still pass
    `still_valid`); then record its result."""
    done = read_marker(marker)
    if done is not None and still_valid(done):
        return done
    result = work()
    # The worker process's peak resident memory so far: the scaling benchmarks read it.
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["node"] = node_identity()  # the stage's stats say which node ran each task
    write_marker(marker, result)
    return result


def file_fingerprint(files: list[Path], base: Path | None = None) -> list[list[Any]]:
    """Name, size and modification time of each input: cheap, and changes when a file is rewritten.
    Files under `base` (the run directory) are named relative to it, so a run directory that is
    moved or copied with its modification times (`cp -a`, `rsync -a`) keeps its finished tasks."""

    def name(f: Path) -> str:
        return str(f.relative_to(base)) if base is not None and f.is_relative_to(base) else str(f)

    return [[name(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def discard_work(work: Path) -> None:
    """Delete a work folder as one step: it is renamed out of the way first, so a process
    killed while deleting never leaves markers whose outputs are gone (a re-run would skip
    those tasks, and the steps after them would fail on every retry). What such a kill leaves
    under the new name is removed by the next prepare_work."""
    if not work.exists():
        return
    doomed = work.with_name(f".{work.name}.discarded-{os.getpid()}-{time.monotonic_ns()}")
    os.replace(work, doomed)
    shutil.rmtree(doomed)


def prepare_work(work: Path, fingerprint: dict[str, Any], markers: Path) -> None:
    """Keep finished work in `work` only if it was made from the same inputs and config."""
    for left in work.parent.glob(f".{work.name}.discarded-*"):  # a deletion that was killed
        shutil.rmtree(left, ignore_errors=True)
    stamp = work / "fingerprint.json"
    if stamp.exists() and read_marker(stamp) != fingerprint:  # an unreadable stamp proves nothing
        log.warning(
            "input or config changed since the last attempt (or its record is unreadable): discarding its "
            "partial work in %s",
            work,
        )
        discard_work(work)
    if not stamp.exists():
        write_json(stamp, fingerprint)
    elif markers.exists():
        log.info("resuming: %d finished task(s) will be skipped", len(list(markers.glob("*.json"))))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def changed_keys(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose value differs between two nested configs: {key: (saved, now)}."""
    a, b = _flat(saved), _flat(now)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}

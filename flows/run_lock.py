"""One writer per run directory: an exclusive lock held while a flow writes it.

The lock is an flock on `run.lock`, so it goes away with its process however that process
ends; the file keeps who held it last (pid, host, flow run), which is how a run whose
process died is found and marked Crashed at the next start (infra/app/crashed.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infra.core.storage import RunDir


class RunLocked(RuntimeError):
    """Another live process is writing this run directory."""


# Lock files this process holds. On NFS the client emulates flock with POSIX locks, which
# belong to the process, not to the open file: a probe of our own lock would succeed, and
# closing the probe's descriptor would release the lock we hold.
_HELD: set[Path] = set()


def lock_path(run: RunDir) -> Path:
    return run.root / "run.lock"


def read_holder(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _locked(run: RunDir) -> RunLocked:
    h = read_holder(lock_path(run))
    return RunLocked(
        f"run {run.root.name} is being written by pid {h.get('pid')} on {h.get('host')} "
        f"(flow run {h.get('flow_run_id')}, since {h.get('started')}); wait for it to end or stop "
        f"it, or use another --run-id"
    )


def check_free(run: RunDir) -> None:
    """Refuse, naming the holder, if a live process is writing this run directory."""
    if is_held(run.root):
        raise _locked(run)


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.get_id()) if flow_run.get_id() else None


@contextlib.contextmanager
def run_lock(run: RunDir) -> Iterator[dict[str, Any]]:
    """Hold the run directory's lock for the block; refuse, naming the holder, if it is taken."""
    path = lock_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for _attempt in range(10):  # a probe by is_held() holds it for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.1)
        else:
            raise _locked(run)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "flow_run_id": _flow_run_id(),
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        _HELD.add(path.resolve())
        try:
            yield holder
        finally:
            _HELD.discard(path.resolve())
    finally:
        os.close(fd)  # releases the flock


def is_held(run_root: Path) -> bool:
    """Whether a live process holds this run directory's lock."""
    path = run_root / "run.lock"
    if path.resolve() in _HELD:
        return True
    if not path.exists():
        return False
    # A shared lock: it conflicts with the writer's exclusive one all the same, and needs only
    # read access. On NFS an exclusive lock on a read-only descriptor fails with EBADF.
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

"""One writer per run directory; the lock goes with its process, however it ends."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from flows.run_lock import RunLocked, is_held, lock_path, read_holder, run_lock
from infra.core.storage import RunDir

HOLD = """
import sys, time
from flows.run_lock import run_lock
from infra.core.storage import RunDir
from pathlib import Path
with run_lock(RunDir(Path(sys.argv[1]))):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_is_refused_naming_the_first_until_it_dies(tmp_path):
    run = RunDir(tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_held(run.root)
        with pytest.raises(RunLocked, match=rf"being written by pid {holder.pid} on "), run_lock(run):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not is_held(run.root)  # SIGKILL left no stale lock behind
    assert read_holder(lock_path(run))["pid"] == holder.pid  # but says who held it last
    with run_lock(run) as me:
        assert me["pid"] != holder.pid and is_held(run.root)
    assert not is_held(run.root)


def test_a_run_directory_never_locked_is_free(tmp_path):
    assert not is_held(tmp_path)


# How the Linux NFS client implements flock: as a POSIX lock on the whole file (fcntl/lockf),
# which needs a descriptor open for writing to lock exclusively and belongs to the process.
NFS_FLOCK = "import fcntl; fcntl.flock = lambda fd, op: fcntl.lockf(fd, op)\n"


def test_the_lock_works_with_nfs_lock_semantics(tmp_path, monkeypatch):
    import fcntl

    monkeypatch.setattr(fcntl, "flock", fcntl.lockf)
    run = RunDir(tmp_path / "r")
    holder = subprocess.Popen(
        [sys.executable, "-c", NFS_FLOCK + HOLD, str(run.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_held(run.root)  # was EBADF: an exclusive probe on a read-only descriptor
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not is_held(run.root)
    with run_lock(run):
        assert is_held(run.root)  # our own lock: probing it must not release it
        taker = subprocess.run(
            [sys.executable, "-c", NFS_FLOCK + HOLD, str(run.root)], capture_output=True, text=True, timeout=60
        )
        assert taker.returncode == 1 and "RunLocked" in taker.stderr and "held" not in taker.stdout
    assert not is_held(run.root)

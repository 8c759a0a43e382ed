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

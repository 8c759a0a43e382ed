"""A task's output published as every stage publishes it (infra/core/resume.once around a
write through storage.atomic_path: file written, renamed, marker written), with the process
SIGKILLed between each pair of those steps; a rerun then finishes it correctly: the output
is whole, the marker holds the result, and nothing half-written was ever under the final name."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from infra.core.task_markers import once, read_marker

# The child publishes out/part-0.json and its marker, killing itself at KILL_AT if it is set.
CHILD = """
import json, os, signal, sys
from pathlib import Path
from infra.core.task_markers import once
from infra.core.storage import atomic_path

out, kill_at = Path(sys.argv[1]), sys.argv[2]
def die(point):
    if point == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def work():
    with atomic_path(out / "part-0.json") as tmp:
        tmp.write_text(json.dumps({"rows": list(range(1000))}))
        die("written")
    die("renamed")
    return {"rows": 1000}

once(out / "markers" / "part-0.json", work)
die("marked")
"""
POINTS = ["written", "renamed", "marked"]


def _publish(out: Path, kill_at: str) -> int:
    root = Path(__file__).resolve().parents[3]
    return subprocess.run([sys.executable, "-c", CHILD, str(out), kill_at], cwd=root, timeout=60).returncode


def _work(out: Path) -> dict:
    # What the rerun does when it must redo the task.
    from infra.core.storage import atomic_path

    with atomic_path(out / "part-0.json") as tmp:
        tmp.write_text(json.dumps({"rows": list(range(1000))}))
    return {"rows": 1000, "redone": True}


@pytest.mark.parametrize("kill_at", POINTS)
def test_a_kill_between_publishing_steps_is_finished_by_the_rerun(tmp_path, kill_at):
    out = tmp_path / "out"
    assert _publish(out, kill_at) == -signal.SIGKILL
    final, marker = out / "part-0.json", out / "markers" / "part-0.json"
    assert final.exists() == (kill_at != "written")  # never a partial file under the final name
    if final.exists():
        assert json.loads(final.read_text()) == {"rows": list(range(1000))}  # and whole when there
    assert marker.exists() == (kill_at == "marked")
    result = once(marker, lambda: _work(out))
    assert json.loads(final.read_text()) == {"rows": list(range(1000))}
    assert read_marker(marker) == result and result["rows"] == 1000
    assert result.get("redone", False) == (kill_at != "marked")  # a finished task is not redone
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["markers", "part-0.json"]

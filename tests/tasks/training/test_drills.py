"""The fault drills operators and tests arm through the environment (tasks/training/loop.py)."""

import threading
import time

from tasks.training import loop
from tasks.training.loop import Faults


def test_no_drill_without_its_variables(monkeypatch, tmp_path):
    monkeypatch.delenv("CRUCIBLE_DRILL_KILL_AT_STEP", raising=False)
    monkeypatch.delenv("CRUCIBLE_DRILL_HOLD_AT_STEP", raising=False)
    assert Faults.drill(str(tmp_path)) is None


def test_the_kill_drill_fires_once_per_run_on_rank_0(monkeypatch, tmp_path):
    monkeypatch.setenv("CRUCIBLE_DRILL_KILL_AT_STEP", "8")
    monkeypatch.delenv("CRUCIBLE_DRILL_HOLD_AT_STEP", raising=False)
    faults = Faults.drill(str(tmp_path))
    assert faults is not None
    assert not faults.should_kill(7, 0) and not faults.should_kill(8, 1)
    assert faults.should_kill(8, 0)
    assert (tmp_path / "logs" / "drill-killed-at-step8").is_file()
    assert not faults.should_kill(8, 0)  # the retry or resume trains on


def test_the_hold_drill_waits_at_its_step_until_released_once_per_run(monkeypatch, tmp_path):
    monkeypatch.setenv("CRUCIBLE_DRILL_HOLD_AT_STEP", "8")
    monkeypatch.delenv("CRUCIBLE_DRILL_KILL_AT_STEP", raising=False)
    monkeypatch.setattr(loop, "HOLD_LIMIT_S", 30.0)  # a hold that never ends shows as one of 30 s
    faults = Faults.drill(str(tmp_path))
    assert faults is not None and faults.kill_at_step is None
    logs = tmp_path / "logs"
    faults.hold(7, 0)  # another step, and
    faults.hold(8, 1)  # another rank, pass straight through
    assert not (logs / "drill-holding-at-step8").exists()

    def release() -> None:
        while not (logs / "drill-holding-at-step8").exists():
            time.sleep(0.01)
        time.sleep(0.3)
        (logs / "drill-release").write_text("go\n")

    releaser = threading.Thread(target=release)
    releaser.start()
    start = time.monotonic()
    faults.hold(8, 0)
    held = time.monotonic() - start
    releaser.join()
    assert held >= 0.3  # it waited for the release, not just for the marker
    (logs / "drill-release").unlink()
    start = time.monotonic()
    faults.hold(8, 0)  # once per run: a resumed run is not held again, though nothing releases it
    assert time.monotonic() - start < 25

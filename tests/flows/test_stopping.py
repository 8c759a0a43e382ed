"""flows/stopping.py on real signals, in this process: a SIGTERM during training becomes the
run's stop request and reaches the handler that was installed before (Prefect's, in a flow run)
only once training has stopped or the grace period is over; outside training it reaches it
at once. (tests/flows/test_operations_e2e.py cancels a served run in the UI end to end.)"""

from __future__ import annotations

import os
import signal
import time

import pytest

from flows.stopping import COMMAND_STOPS, stop_before_prefect
from infra.core.storage import RunDir, write_json


class Prefects:
    """Stands in for Prefect's SIGTERM handler, which raises in the main thread."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, signum, frame) -> None:
        self.calls += 1
        raise InterruptedError("Prefect's handler")


@pytest.fixture
def prefects():
    handler = Prefects()
    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


def _run(tmp_path, stage: str) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_json(run.root / "stages.json", {stage: {"status": "running"}})
    return run


def test_during_training_the_ranks_are_asked_first_and_prefect_told_once_they_stopped(tmp_path, prefects):
    run = _run(tmp_path, "train")
    run.stop_request.write_text("{}")  # left by a killed run: cleared, not obeyed
    asked = False
    with pytest.raises(InterruptedError) as ended, stop_before_prefect(run, grace_s=60):
        assert not run.stop_request.exists()
        os.kill(os.getpid(), signal.SIGTERM)
        assert run.stop_request.is_file() and prefects.calls == 0  # the run goes on, asked to stop
        os.kill(os.getpid(), signal.SIGTERM)  # the runner may send it again: asked once
        asked = prefects.calls == 0
        raise RuntimeError("training stopped as asked")  # StopRequested, as the stage fails with it
    assert asked and isinstance(ended.value.__context__, RuntimeError)  # Prefect told after the stop
    assert prefects.calls == 1 and not run.stop_request.exists()
    assert signal.getsignal(signal.SIGTERM) is prefects


def test_training_that_does_not_stop_within_the_grace_period_is_ended_by_prefect(tmp_path, prefects):
    run = _run(tmp_path, "train")
    with pytest.raises(InterruptedError), stop_before_prefect(run, grace_s=0.5):
        os.kill(os.getpid(), signal.SIGTERM)
        start, asked = time.monotonic(), run.stop_request.is_file()
        time.sleep(5)  # the grace timer hands the signal to Prefect's handler, which ends this
    assert asked and time.monotonic() - start >= 0.45 and prefects.calls == 1


def test_outside_training_prefect_is_told_at_once(tmp_path, prefects):
    run = _run(tmp_path, "evaluate")
    with pytest.raises(InterruptedError), stop_before_prefect(run, grace_s=60):
        os.kill(os.getpid(), signal.SIGTERM)
    assert prefects.calls == 1 and not run.stop_request.exists()


def test_inside_a_crucible_command_its_stopper_keeps_the_signal(tmp_path, prefects):
    run = _run(tmp_path, "train")
    COMMAND_STOPS.set()
    try:
        with stop_before_prefect(run, grace_s=60):
            assert signal.getsignal(signal.SIGTERM) is prefects  # nothing replaced
    finally:
        COMMAND_STOPS.clear()

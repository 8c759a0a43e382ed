"""A run asked to stop saves a checkpoint and ends Cancelled, instead of dying: Cancel in the
Prefect UI during `crucible run`, then SIGTERM to `crucible train`, each at a known training
step (the hold drill), each followed by a resume; the finished run's losses equal the
uninterrupted session run's, bit for bit. Real Prefect server, Ray and DeepSpeed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from infra.core.storage import RunDir, read_json
from tests.flows.e2e_env import CRUCIBLE, ROOT, prefect_client, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
CLOZE = ["--set", "evaluation.formulations=[cloze]", "--set", "evaluation.tasks=[arc_easy]"]


def _start(command: str, run: RunDir, e2e, hold_at: int | None, log: Path) -> subprocess.Popen:
    env = {**os.environ, **({"CRUCIBLE_DRILL_HOLD_AT_STEP": str(hold_at)} if hold_at else {})}
    args = [CRUCIBLE, command, "-c", "debug", "--run-id", run.root.name, "--set", f"runs_dir={run.root.parent}",
            *e2e.runtime_sets(), *CLOZE]  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _held_then_stopped(run: RunDir, proc: subprocess.Popen, log: Path, step: int, stop) -> str:
    """Wait until rank 0 holds at the start of `step`, stop the command, let the step run."""
    wait_for(lambda: (run.root / "logs" / f"drill-holding-at-step{step}").exists() or proc.poll() is not None,
             300, f"training to reach step {step}", poll=0.2)  # fmt: skip
    assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
    stop()
    wait_for(run.stop_request.exists, 30, "the command to ask the ranks to stop", poll=0.1)
    (run.root / "logs" / "drill-release").write_text("go\n")
    proc.wait(timeout=120)  # the step, its checkpoint and the shutdown, well within the grace
    text = log.read_text(errors="replace")
    (run.root / "logs" / "drill-release").unlink()
    return text


def _losses(run: RunDir) -> list[float]:
    return [json.loads(line)["loss"] for line in run.metrics.read_text().splitlines()]


def _steps(run: RunDir) -> list[int]:
    return sorted(int(p.name.removeprefix("step")) for p in run.checkpoints.glob("step*"))


def test_cancel_and_sigterm_save_a_checkpoint_and_the_resumed_run_trains_the_same(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "runs" / "stopped", upto="tokenize")

    # Cancel in the UI, while `crucible run` trains: the pipeline's flow run is in run.lock.
    log = tmp_path / "cancelled.log"
    proc = _start("run", run, e2e, 4, log)

    def cancel() -> None:
        from prefect.states import Cancelling

        flow_run_id = uuid.UUID(read_json(run.root / "run.lock")["flow_run_id"])
        with prefect_client(e2e.api) as client:
            client.set_flow_run_state(flow_run_id, Cancelling(), force=True)

    out = _held_then_stopped(run, proc, log, 4, cancel)
    assert proc.returncode == 1, out[-4000:]
    assert "cancelled: stopped by Cancel in the Prefect UI; the newest checkpoint is step 4" in out
    assert f"crucible resume {run.root}" in out
    # The ranks stopped as asked: no rank reports it as an error with a traceback.
    assert not [line for line in out.splitlines() if "RayTrainWorker" in line and "Traceback" in line]
    with prefect_client(e2e.api) as client:
        state = client.read_flow_run(uuid.UUID(read_json(run.root / "run.lock")["flow_run_id"])).state
    assert state.type.value == "CANCELLED" and f"crucible resume {run.root}" in state.message
    assert 4 in _steps(run) and not run.stop_request.exists()
    assert [json.loads(line)["step"] for line in run.metrics.read_text().splitlines()] == [1, 2, 3, 4]

    # SIGTERM to `crucible train`, as a scheduler or container runtime sends it.
    log = tmp_path / "sigterm.log"
    proc = _start("train", run, e2e, 8, log)
    out = _held_then_stopped(run, proc, log, 8, lambda: proc.send_signal(signal.SIGTERM))
    assert proc.returncode == 143, out[-4000:]
    assert "cancelled: stopped by SIGTERM; the newest checkpoint is step 8" in out
    assert 8 in _steps(run)

    # Resumed, the run trains the remaining steps exactly as the uninterrupted one did.
    finished = subprocess.run([CRUCIBLE, "train", "-c", "debug", "--run-id", run.root.name, "--set",
                               f"runs_dir={run.root.parent}", *e2e.runtime_sets(), *CLOZE],
                              capture_output=True, text=True, timeout=900, cwd=ROOT)  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert _losses(run) == _losses(pipeline_run.run)

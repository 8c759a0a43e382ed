"""Operations end to end, on a real Prefect server, real Ray and real DeepSpeed: the
pipeline served as a deployment, a training worker SIGKILLed at step 8 of a deployment
run and that flow run finished from its step-6 checkpoint by `prefect flow-run retry`; a
deployment run cancelled in the UI during training, which saves a checkpoint first, then
finished by `crucible resume`; a SIGKILLed `crucible run` shown Crashed and resumed; a process
work pool's worker running the deployed pipeline. Every finished run's losses equal the
uninterrupted run's, bit for bit. Each run starts from a copy of the session run's curated
data and token shards: what is tested here is training, retries and resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from infra.core.storage import RunDir, read_json
from tests.flows.e2e_env import CRUCIBLE, ROOT, crucible, prefect_client, serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
KILL_AT = 8  # the debug preset checkpoints at steps 6 and 12
HOLD_AT = 4  # where the cancel test holds rank 0 (the drill waits for a release file)
# Evaluation is not what these tests are about (the session run checks it): one task, its
# cloze half only, which leaves the benchmark files, and so curation's stage key, as they are.
CLOZE = ["--set", "evaluation.formulations=[cloze]", "--set", "evaluation.tasks=[arc_easy]"]
PREFECT = str(Path(CRUCIBLE).parent / "prefect")


def _wait_final(api: str, flow_run_id: uuid.UUID, timeout: float = 600):
    def final():
        with prefect_client(api) as client:
            fr = client.read_flow_run(flow_run_id)
        return fr if fr.state and fr.state.is_final() else None

    return wait_for(final, timeout, f"flow run {flow_run_id} to finish", poll=0.5)


def _losses(run: RunDir) -> list[float]:
    return [json.loads(line)["loss"] for line in run.metrics.read_text().splitlines()]


def test_a_sigkilled_run_shows_crashed_and_resumes(pipeline_run, e2e, tmp_path):
    """On a Ray of its own: the kill takes the CLI, its Ray and its training workers at once."""
    pipeline_run.copy(tmp_path / "crash", upto="tokenize")
    run = RunDir(tmp_path / "crash")
    proc = subprocess.Popen(
        [CRUCIBLE, "run", "-c", "debug", "--run-id", "crash", "--set", f"runs_dir={tmp_path}",
         *e2e.runtime_sets(ray=False), *CLOZE],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not (run.checkpoints / "step6" / "manifest.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)  # a step takes a fraction of a second: kill it in the middle of training
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI with its Ray and training workers, at once
    proc.wait()
    flow_run_id = uuid.UUID(read_json(run.root / "run.lock")["flow_run_id"])
    with prefect_client(e2e.api) as client:
        assert client.read_flow_run(flow_run_id).state.type.value == "RUNNING"  # what the UI showed
    result = crucible("resume", "crash", "--runs-dir", str(tmp_path), *e2e.runtime_sets(ray=False))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "marked Crashed" in out
    assert "curate: skip; tokenize: skip; train: unfinished" in out
    with prefect_client(e2e.api) as client:
        history = [s.type.value for s in client.read_flow_run_states(flow_run_id)]
    assert "CRASHED" in history and history[-1] == "COMPLETED"
    assert _losses(run) == _losses(pipeline_run.run)


@pytest.fixture(scope="module")
def served(e2e, tmp_path_factory):
    """`crucible serve` of the debug pipeline, with the kill and hold drills armed (a test
    disarms the one it does not use) and no automatic retry, so a killed worker fails its flow run."""
    runs = tmp_path_factory.mktemp("served")
    log = runs / "serve.log"
    args = ["--interval", "86400", "--set", f"runs_dir={runs}", "--set", "training.max_failures=0",
            "--set", "training.retries=0", "--set", "training.stop_grace_s=25", *CLOZE]  # fmt: skip
    drills = {"CRUCIBLE_DRILL_KILL_AT_STEP": str(KILL_AT), "CRUCIBLE_DRILL_HOLD_AT_STEP": str(HOLD_AT)}
    with serving(e2e, "drill", args, log, drills) as deployment:
        yield runs, deployment.id, log


def _disarm(run: RunDir, drill: str) -> None:
    """A drill runs once per run directory: its marker, made beforehand, says it already has."""
    (run.root / "logs").mkdir(exist_ok=True)
    (run.root / "logs" / drill).write_text("disarmed by the test\n")


def _killed_deployment_run(api: str, run: RunDir, deployment_id: uuid.UUID):
    """A run of the deployment on `run` (curated and tokenized already), killed at step 8."""
    _disarm(run, f"drill-holding-at-step{HOLD_AT}")
    with prefect_client(api) as client:
        fr = client.create_flow_run_from_deployment(deployment_id, parameters={"run_dir": str(run.root)})
    done = _wait_final(api, fr.id)
    assert done.state.type.value == "FAILED", done.state
    assert "stage train failed" in done.state.message  # the stage and the reason, in the UI
    assert (run.root / "logs" / f"drill-killed-at-step{KILL_AT}").is_file()
    assert [json.loads(line)["step"] for line in run.metrics.read_text().splitlines()] == list(range(1, KILL_AT))
    made = {p: p.stat().st_mtime_ns for p in [run.curation_stats, run.manifest, *run.shards.rglob("*.arrow")]}
    return done, made


def _finished_like_the_uninterrupted_run(run: RunDir, made: dict, reference: RunDir, log: str) -> None:
    assert f"resumed from {run.checkpoints / 'step6'} at step 6" in log
    assert "curate: skip; tokenize: skip; train: unfinished" in log
    assert {p: p.stat().st_mtime_ns for p in made} == made  # curation and tokenization not redone
    assert _losses(run) == _losses(reference)
    assert read_json(run.train_summary)["steps"] == 12 and run.eval_results.is_file()


def test_prefect_flow_run_retry_finishes_a_killed_deployment_run(served, pipeline_run, e2e):
    runs, deployment_id, log = served
    run = pipeline_run.copy(runs / "retried", upto="tokenize")
    failed, made = _killed_deployment_run(e2e.api, run, deployment_id)
    retry = subprocess.run(
        [PREFECT, "flow-run", "retry", str(failed.id)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PREFECT_API_URL": e2e.api},
    )  # fmt: skip
    assert retry.returncode == 0, retry.stdout + retry.stderr
    done = _wait_final(e2e.api, failed.id)  # the same flow run, run again by the serving process
    assert done.state.type.value == "COMPLETED", done.state
    _finished_like_the_uninterrupted_run(run, made, pipeline_run.run, log.read_text(errors="replace"))


def test_cancel_in_the_ui_saves_a_checkpoint_and_crucible_resume_finishes_the_run(served, pipeline_run, e2e):
    """Cancel of a served run during training: the runner SIGTERMs the flow run's process; the
    ranks finish their step and save it before Prefect ends the run, Cancelled; `crucible
    resume` then continues that flow run from the saved step."""
    from prefect.states import Cancelling

    runs, deployment_id, log = served
    run = pipeline_run.copy(runs / "cancelled", upto="tokenize")
    _disarm(run, f"drill-killed-at-step{KILL_AT}")
    with prefect_client(e2e.api) as client:
        fr = client.create_flow_run_from_deployment(deployment_id, parameters={"run_dir": str(run.root)})
    holding = run.root / "logs" / f"drill-holding-at-step{HOLD_AT}"
    wait_for(holding.exists, 300, f"rank 0 to hold at step {HOLD_AT}", poll=0.2)
    with prefect_client(e2e.api) as client:
        client.set_flow_run_state(fr.id, Cancelling(), force=True)  # what Cancel in the UI does
    wait_for(run.stop_request.exists, 60, "the stop request", poll=0.2)
    (run.root / "logs" / "drill-release").write_text("")  # step 4 runs, then the ranks stop
    done = _wait_final(e2e.api, fr.id)
    assert done.state.type.value == "CANCELLED", done.state
    steps = [json.loads(line)["step"] for line in run.metrics.read_text().splitlines()]
    assert steps == list(range(1, HOLD_AT + 1))  # the step that was running finished, no more
    assert (run.checkpoints / f"step{HOLD_AT}" / "manifest.json").is_file()  # and was saved
    assert "training stopped as asked after step 4" in log.read_text(errors="replace")
    result = crucible("resume", str(run.root), *e2e.runtime_sets())
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert f"/v2/runs/flow-run/{fr.id}" in result.stdout  # the same flow run, not a new one
    assert _wait_final(e2e.api, fr.id).state.type.value == "COMPLETED"
    assert f"resumed from {run.checkpoints / f'step{HOLD_AT}'} at step {HOLD_AT}" in out
    assert _losses(run) == _losses(pipeline_run.run)
    assert read_json(run.train_summary)["steps"] == 12 and run.eval_results.is_file()


def test_a_process_work_pool_worker_runs_the_deployed_pipeline(e2e, pipeline_run, tmp_path):
    """infra/deploy/prefect.yaml deployed as its header says, one run of the debug config
    started on demand, and `prefect worker start` from this checkout running it."""
    from infra.app.config import load_config

    env = {**os.environ, "PREFECT_API_URL": e2e.api, "CRUCIBLE_HOME": str(ROOT)}

    def sh(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run([PREFECT, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    sh("work-pool", "create", "crucible", "--type", "process", "--overwrite")
    deployed = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--prefect-file", "infra/deploy/prefect.yaml", "--all"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    out = deployed.stdout + deployed.stderr
    # Prefect 3.8.8's deploy command ends with a check for online workers whose request (a null
    # limit) its own server rejects: the deployment is made, the command then reports a 422.
    assert deployed.returncode == 0 or ("successfully created" in out and "workers/filter" in out), out[-3000:]
    runs = tmp_path / "runs"
    run = pipeline_run.copy(runs / "weekly", upto="tokenize")
    sets = [f"runs_dir={runs}", f"runtime.prefect_port={e2e.prefect_port}", f"runtime.ray_address={e2e.ray_address}",
            *CLOZE[1::2]]  # fmt: skip
    cfg = load_config("debug", sets).model_dump(mode="json")
    started = sh("deployment", "run", "pipeline/weekly", "--params", json.dumps({"cfg": cfg, "run_dir": str(run.root)}))
    match = re.search(r"flow-run/([0-9a-f-]{36})", started.stdout)
    assert match, started.stdout
    flow_run_id = uuid.UUID(match.group(1))
    sh("worker", "start", "-p", "crucible", "--run-once", timeout=900)
    done = _wait_final(e2e.api, flow_run_id)
    assert done.state.type.value == "COMPLETED", done.state
    assert read_json(run.train_summary)["steps"] == 12 and run.eval_results.is_file()
    assert _losses(run) == _losses(pipeline_run.run)  # the same pipeline as `crucible run`

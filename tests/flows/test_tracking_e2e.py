"""MLflow tracking end to end, against a real `mlflow server` on loopback: a tracked debug run
holds the config as parameters, each training step's metrics once, the stages' totals, the
evaluation scores and the run's files, its Prefect flow run and run directory as tags, and a
link in Prefect's run-directory artifact; `crucible export` registers the model; the MLflow
UI shows the run (screenshots to $CRUCIBLE_SCREENSHOTS, as tests/flows/test_ui_browser.py).
A run whose training rank 0 is SIGKILLed and then resumed logs every step exactly once, in
the same MLflow run. Real Prefect server, Ray and DeepSpeed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from infra.core.storage import RunDir, read_json
from tests.browser import chromium, screenshot_folder
from tests.flows.e2e_env import crucible, wait_for
from tests.services import PipelineRun, free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
MLFLOW = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "mlflow")
# Evaluation's cloze half of one task: enough for an evaluation metric, and it leaves the
# benchmark files, and so curation's stage key, as they are.
CLOZE = ["--set", "evaluation.formulations=[cloze]", "--set", "evaluation.tasks=[arc_easy]"]
KILL_AT = 8  # the debug preset checkpoints at steps 6 and 12
MAX_STEPS = 12


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> str:
    """`mlflow server` on a free loopback port, its runs in SQLite and its artifacts proxied."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 -- held open for the server's life
    proc = subprocess.Popen(
        [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        import urllib.request

        assert proc.poll() is None, (root / "server.log").read_text(errors="replace")[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    try:
        wait_for(up, 120, "the MLflow server", poll=0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def _tracked(url: str) -> list[str]:
    return ["--set", "tracking.mlflow.enabled=true", "--set", f"tracking.mlflow.uri={url}"]


@pytest.fixture(scope="module")
def tracked_run(e2e, mlflow_server, tmp_path_factory) -> tuple[PipelineRun, str]:
    """A fresh debug run, tracked (the session's run is untracked); (the run, its output)."""
    runs = tmp_path_factory.mktemp("tracked-runs")
    t0 = time.monotonic()
    done = crucible("run", "-c", "debug", "--run-id", "tracked", "--set", f"runs_dir={runs}", *e2e.runtime_sets(),
                    *CLOZE, *_tracked(mlflow_server))  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    print(f"tracked debug run: {time.monotonic() - t0:.0f} s")
    match = re.search(rf"flow run: {e2e.ui}/v2/runs/flow-run/([0-9a-f-]+)", done.stdout)
    assert match, out[-3000:]
    return PipelineRun(RunDir(runs / "tracked"), uuid.UUID(match.group(1))), done.stdout


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_a_tracked_run_logs_its_config_metrics_files_and_model(tracked_run, mlflow_server, e2e, tmp_path):
    pipeline, out = tracked_run
    run = pipeline.run
    record = read_json(run.root / "mlflow_run.json")
    assert record["uri"] == mlflow_server and record["active"]
    run_id = record["run_id"]
    page = f"{mlflow_server}/#/experiments/{record['experiment_id']}/runs/{run_id}"
    assert f"MLflow run: {page}" in out  # the end of `crucible run`, after its usual lines
    assert f"flow run: {e2e.ui}/v2/runs/flow-run/" in out and f"done: {run.root}" in out

    client = _client(mlflow_server)
    mlrun = client.get_run(run_id)
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == "tracked"
    params, tags, metrics = mlrun.data.params, mlrun.data.tags, mlrun.data.metrics
    assert params["training.max_steps"] == str(MAX_STEPS) and params["tracking.mlflow.enabled"] == "true"
    assert params["evaluation.tasks"] == '["arc_easy"]'
    assert tags["prefect.flow_run_id"] == str(pipeline.flow_run_id) and tags["crucible.run_dir"] == str(run.root)
    assert {tags[f"crucible.stage.{s}"] for s in ("curate", "tokenize", "train", "evaluate")} == {"ran"}

    # Every training metric of metrics.jsonl, once per step, with its values.
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert _steps(client, run_id, "loss") == list(range(1, MAX_STEPS + 1))
    losses = {m.step: m.value for m in client.get_metric_history(run_id, "loss")}
    assert losses == {r["step"]: r["loss"] for r in records}
    for key in ("lr", "tokens_per_s", "peak_mem_mb", "samples"):
        assert _steps(client, run_id, key) == list(range(1, MAX_STEPS + 1)), key
    assert _steps(client, run_id, "val_loss") == [6, 12]
    assert metrics["val_loss"] == records[-1]["val_loss"]
    # The stages' totals and the evaluation's scores.
    stats = read_json(run.curation_stats)["totals"]
    assert metrics["curate.docs_kept"] == stats["docs_kept"] and metrics["curate.docs_in"] == stats["docs_in"]
    assert metrics["tokenize.splits.train.tokens"] == read_json(run.manifest)["splits"]["train"]["tokens"]
    results = read_json(run.eval_results)
    assert metrics["eval.tasks.arc_easy.acc"] == results["tasks"]["arc_easy"]["acc"]
    assert "eval.perplexity.validation.perplexity" in metrics and metrics["train.steps"] == MAX_STEPS
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.md", "loss_curve.png", "train_summary.json"} <= artifacts

    # Prefect's run-directory artifact links to the MLflow run (over plain HTTP: this Prefect
    # client sends null filters, which the server rejects).

    body = {
        "artifacts": {"key": {"any_": ["run-directory"]}, "flow_run_id": {"any_": [str(pipeline.flow_run_id)]}},
        "limit": 10,
        "offset": 0,
        "sort": "CREATED_DESC",
    }
    response = httpx.post(f"{e2e.api}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    found = response.json()
    assert found and page in found[0]["data"]

    # `crucible export` registers the Hugging Face folder as a model version.
    exported = crucible("export", str(run.root), "--out", str(tmp_path / "hf"), timeout=300)
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    assert "registered in MLflow as crucible version 1" in exported.stdout
    (version,) = client.search_model_versions("name = 'crucible'")
    assert version.run_id == run_id and version.source.endswith("/hf_model")
    assert "config.json" in {Path(a.path).name for a in client.list_artifacts(run_id, "hf_model")}

    _screenshots(mlflow_server, record["experiment_id"], run_id, tmp_path)


def _screenshots(url: str, experiment_id: str, run_id: str, tmp_path: Path) -> None:
    """The MLflow UI of the same server in headless Chromium: the experiment's runs, the run."""
    shots = screenshot_folder(tmp_path)
    with chromium() as driver:
        driver.get(f"{url}/#/experiments/{experiment_id}/runs")
        _wait_text(driver, "tracked")
        _click(driver, "//button[@aria-label='Close']")  # the assistant's panel, over half the page
        _click(driver, "//*[normalize-space()='Model training']")  # the UI's mode for training runs
        _wait_text(driver, "tracked")
        driver.save_screenshot(str(shots / "mlflow-experiment-runs.png"))
        driver.get(f"{url}/#/experiments/{experiment_id}/runs/{run_id}")
        _wait_text(driver, "tracked", "Metrics", "loss")
        driver.save_screenshot(str(shots / "mlflow-run.png"))
        _click(driver, "//button[@aria-label='Close']")
        _click(driver, "//button[normalize-space()='Model metrics']")
        search = driver.find_elements("xpath", "//input[@placeholder='Search metric charts']")
        if search:  # the loss charts, not the first charts in name order
            search[0].send_keys("loss")
            _wait_text(driver, "val_loss")
            time.sleep(2)  # the charts draw after their names show
            driver.save_screenshot(str(shots / "mlflow-run-loss-charts.png"))


def _click(driver, xpath: str) -> bool:
    """Click the first element `xpath` finds, if any (the UI's optional panels and modes)."""
    found = driver.find_elements("xpath", xpath)
    if found:
        try:
            found[0].click()
            time.sleep(1)
            return True
        except Exception:  # hidden or covered: the screenshot is taken as the page is
            return False
    return False


def _wait_text(driver, *needles: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = driver.find_element("tag name", "body").text
        missing = [n for n in needles if n not in text]
        if not missing:
            return text
        assert time.monotonic() < deadline, f"not shown: {missing}\n{text[:3000]}"
        time.sleep(0.5)


def test_a_killed_and_resumed_run_logs_each_step_once_in_the_same_mlflow_run(tracked_run, mlflow_server, e2e, tmp_path):
    pipeline, _ = tracked_run
    run = pipeline.copy(tmp_path / "killed", upto="tokenize")
    args = ["--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(), *CLOZE, *_tracked(mlflow_server),
            "--set", "training.max_failures=0", "--set", "training.retries=0"]  # fmt: skip
    env = {**os.environ, "CRUCIBLE_DRILL_KILL_AT_STEP": str(KILL_AT)}
    killed = crucible("run", "-c", "debug", "--run-id", "killed", *args, env=env)
    assert killed.returncode == 1, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert (run.root / "logs" / f"drill-killed-at-step{KILL_AT}").is_file()
    run_id = read_json(run.root / "mlflow_run.json")["run_id"]
    client = _client(mlflow_server)
    assert client.get_run(run_id).info.status == "FAILED"
    before = _steps(client, run_id, "loss")
    assert before and before == list(range(1, before[-1] + 1)) and before[-1] < KILL_AT

    resumed = crucible("resume", "killed", "--runs-dir", str(tmp_path), *e2e.runtime_sets())
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-4000:]
    assert f"resumed from {run.checkpoints / 'step6'} at step 6" in out
    assert read_json(run.root / "mlflow_run.json")["run_id"] == run_id  # the same MLflow run went on
    assert f"MLflow run: {mlflow_server}/#/experiments/" in out and run_id in out
    assert client.get_run(run_id).info.status == "FINISHED"
    assert _steps(client, run_id, "loss") == list(range(1, MAX_STEPS + 1))  # each step exactly once
    assert _steps(client, run_id, "val_loss") == [6, 12]
    # An exact resume: the steps trained again equal those logged before the kill.
    losses = {m.step: m.value for m in client.get_metric_history(run_id, "loss")}
    assert losses == {r["step"]: r["loss"] for r in map(json.loads, run.metrics.read_text().splitlines())}
    experiment = client.get_run(run_id).info.experiment_id
    assert len(client.search_runs([experiment], "attributes.run_name = 'killed'")) == 1


def test_a_tracking_server_that_is_down_is_one_warning_and_never_blocks_training(tmp_path, caplog, monkeypatch):
    """What the pipeline and training's rank 0 do when nothing listens at the tracking URI."""
    # Set here, so that the client's defaults (tasks/tracking/client.py) leave the session's env as it was.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    from flows.config import PipelineConfig
    from tasks.tracking.config import MlflowConfig
    from tasks.tracking.metric_logger import MetricLogger
    from tasks.tracking.pipeline_tracker import PipelineTracker
    from tasks.tracking.run_record import TrackedRun

    down = f"http://127.0.0.1:{free_port()}"
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    cfg = MlflowConfig(enabled=True, uri=down, timeout_s=2)
    t0 = time.monotonic()
    tracker = PipelineTracker.open(cfg, run, str(tmp_path), PipelineConfig().model_dump(mode="json"), None)
    tracker.stage("curate", run, "ran")
    tracker.finish(run)
    assert not tracker.on and time.monotonic() - t0 < 30
    logger = MetricLogger(TrackedRun(down, "0", "0" * 32, "crucible", timeout_s=2, flush_timeout_s=20))
    t0 = time.monotonic()
    for step in range(1, 1001):
        logger.log({"step": step, "loss": 1.0})
    assert time.monotonic() - t0 < 1  # queued, never sent from the training step
    logger.close()
    failures = [r for r in caplog.records if "MLflow tracking failed" in r.getMessage()]
    assert [r.levelname for r in failures] == ["WARNING", "WARNING"], failures  # one each, not one per call

"""Training progress reaches the Prefect UI while the ranks train, not only at the end: on
the session's Prefect server (tests/services.py)."""

import json

import httpx
import pytest
from prefect import flow, task

from infra.core.storage import RunDir
from tasks.training.prefect_tasks import LiveProgress
from tests.flows.e2e_env import wait_for

pytestmark = pytest.mark.e2e  # a real Prefect server; no Ray


def _append(run: RunDir, record: dict) -> None:
    with open(run.metrics, "a") as f:
        f.write(json.dumps(record) + "\n")


def _wait_for(predicate, timeout=30.0):
    return wait_for(predicate, timeout, "the progress artifacts", poll=0.1)


def test_progress_and_metrics_table_update_during_training(tmp_path, prefect_api):
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run = RunDir(tmp_path)
    seen = {}

    def artifacts(key):
        # Over plain HTTP: this client version sends null filters, which the server rejects.
        # This flow run's only: the server is shared with runs that train at the same time.
        body = {
            "artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [str(flow_run.id)]}},
            "limit": 50,
            "offset": 0,
            "sort": "CREATED_DESC",
        }
        response = httpx.post(f"{prefect_api}/artifacts/filter", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def progress(_):
        arts = artifacts("training-progress")
        return arts[0]["data"] if arts else None

    def table_versions(_):
        return artifacts("training-metrics")

    @task
    def fake_training():
        client = None
        with LiveProgress(run, max_steps=4, every_s=0.1):
            assert progress(client) == 0.0
            _append(run, {"step": 1, "loss": 5.0, "lr": 1e-3})
            seen["after 1"] = _wait_for(lambda: progress(client) == 25.0 and progress(client))
            _append(run, {"step": 2, "loss": 4.0, "lr": 1e-3, "val_loss": 4.5})
            _append(
                run,
                {
                    "step": 3,
                    "event": "spike",
                    "reason": "loss is nan",
                    "rolled_back_to": 2,
                    "skipped_samples": [16, 24],
                },
            )
            seen["after 2"] = _wait_for(lambda: progress(client) == 50.0 and progress(client))
            seen["tables during"] = len(table_versions(client))
            _append(run, {"step": 3, "loss": 3.5, "lr": 1e-3})
            _append(run, {"step": 4, "loss": 3.0, "lr": 1e-3, "val_loss": 3.2})
        seen["final"] = progress(client)
        seen["table"] = table_versions(client)[0]

    @flow
    def f():
        fake_training()

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        f()
    assert seen["after 1"] == 25.0 and seen["after 2"] == 50.0 and seen["final"] == 100.0
    assert seen["tables during"] >= 2  # the table was published while "training" went on
    rows = json.loads(seen["table"]["data"])
    assert [r["step"] for r in rows] == [2, 3, 4]  # validation steps, the last step, the spike event
    assert any("spike: loss is nan" in str(r.get("event")) for r in rows)

"""The debug pipeline run once through a real Prefect server, real Ray and real DeepSpeed,
shared by the end-to-end modules (the operations tests compare their runs against it)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from infra.app.prefect_server import start_or_reuse
from infra.core.storage import RunDir
from tests.flows.e2e_env import CRUCIBLE, PORT, ROOT


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real `prefect server start` (scheduler included) on a database of this session's own,
    so deployments and scheduled runs of earlier sessions cannot fire here."""
    home = tmp_path_factory.mktemp("prefect-home")
    saved = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(home)  # the server and every CLI the tests start
    server = start_or_reuse("127.0.0.1", PORT, home / "logs")
    yield server.api_url
    server.stop()
    if saved is None:
        os.environ.pop("PREFECT_HOME", None)
    else:
        os.environ["PREFECT_HOME"] = saved


@pytest.fixture(scope="session")
def pipeline_run(prefect_api, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = subprocess.run(
        [
            CRUCIBLE,
            "run",
            "-c",
            "debug",
            "--run-id",
            "e2e",
            "--set",
            f"runs_dir={runs}",
            "--set",
            f"runtime.prefect_port={PORT}",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = re.search(rf"flow run: http://127.0.0.1:{PORT}/v2/runs/flow-run/([0-9a-f-]+)", result.stdout)
    assert match, result.stdout[-2000:]
    return RunDir(runs / "e2e"), uuid.UUID(match.group(1)), runs

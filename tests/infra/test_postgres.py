"""The production set-up: infra/deploy/postgres.sh installs and prepares PostgreSQL, and the
debug pipeline runs against a Prefect server on it. Its runs are in PostgreSQL, not SQLite."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from infra.app.prefect_server import start_or_reuse
from tests.flows.e2e_env import CRUCIBLE, ROOT
from tests.system_packages import ensure

pytestmark = pytest.mark.slow
PORT = 4225
RECIPE = ROOT / "infra" / "deploy" / "postgres.sh"


def _psql(db: str, sql: str) -> str:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-d", db, "-tAc", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def test_the_debug_pipeline_runs_on_a_prefect_server_backed_by_postgresql(tmp_path, monkeypatch):
    ensure(["postgresql"], ["pg_lsclusters"])
    db = f"crucible_ci_{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["bash", str(RECIPE), db, db], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    url = re.search(r"PREFECT_SERVER_DATABASE_CONNECTION_URL=(\S+)", made.stdout).group(1)
    assert url.startswith(f"postgresql+asyncpg://{db}:") and url.endswith(f"@127.0.0.1:5432/{db}")
    again = subprocess.run(["bash", str(RECIPE), db, db], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and url in again.stdout  # idempotent: the same database and password
    assert _psql(db, "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'") == "pg_trgm"

    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", url)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))  # no SQLite file to fall back on
    server = start_or_reuse("127.0.0.1", PORT, tmp_path / "logs")
    try:
        result = subprocess.run(
            [
                CRUCIBLE,
                "run",
                "-c",
                "debug",
                "--run-id",
                "pg",
                "--set",
                f"runs_dir={tmp_path / 'runs'}",
                "--set",
                f"runtime.prefect_port={PORT}",
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        flow_run_id = re.search(r"/v2/runs/flow-run/([0-9a-f-]+)", result.stdout).group(1)
    finally:
        server.stop()
    assert _psql(db, f"SELECT state_type FROM flow_run WHERE id = '{flow_run_id}'") == "COMPLETED"
    subflows = _psql(
        db,
        "SELECT f.name FROM flow_run r JOIN flow f ON f.id = r.flow_id JOIN task_run t ON "
        f"t.id = r.parent_task_run_id WHERE t.flow_run_id = '{flow_run_id}' ORDER BY r.start_time",
    )
    assert subflows.split() == ["curate", "tokenize", "train", "evaluate"]
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()
    subprocess.run(["runuser", "-u", "postgres", "--", "dropdb", db], check=True, timeout=60)
    subprocess.run(["runuser", "-u", "postgres", "--", "dropuser", db], check=True, timeout=60)

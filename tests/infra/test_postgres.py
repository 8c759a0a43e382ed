"""The production set-up: infra/deploy/postgres.sh installs and prepares PostgreSQL, and the
session's Prefect server runs on it (tests/services.py), so the session's debug pipeline run
is in PostgreSQL, not SQLite."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.services import RECIPE

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.root]


def _psql(db: str, sql: str) -> str:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-d", db, "-tAc", sql],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip


def test_the_debug_pipeline_ran_on_a_prefect_server_backed_by_postgresql(prefect_server, pipeline_run):
    if "database" not in prefect_server:
        pytest.skip(prefect_server["why_not"])
    db, url = prefect_server["database"], prefect_server["url"]
    clusters = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
    port = clusters.stdout.split()[2]  # the cluster's own: 5432 unless that port was taken
    assert url.startswith(f"postgresql+asyncpg://{db}:") and url.endswith(f"@127.0.0.1:{port}/{db}")
    again = subprocess.run(["bash", str(RECIPE), db, db], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and url in again.stdout  # idempotent: the same database and password
    match = re.search(r"PREFECT_SERVER_DATABASE_CONNECTION_URL=(\S+)", again.stdout)
    assert match and match.group(1) == url
    assert _psql(db, "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'") == "pg_trgm"

    flow_run_id = pipeline_run.flow_run_id
    assert _psql(db, f"SELECT state_type FROM flow_run WHERE id = '{flow_run_id}'") == "COMPLETED"
    subflows = _psql(
        db,
        "SELECT f.name FROM flow_run r JOIN flow f ON f.id = r.flow_id JOIN task_run t ON "
        f"t.id = r.parent_task_run_id WHERE t.flow_run_id = '{flow_run_id}' ORDER BY r.start_time",
    )
    assert subflows.split() == ["curate", "tokenize", "train", "evaluate"]
    # The server made no SQLite database of its own to fall back on.
    assert not (Path(os.environ["PREFECT_HOME"]) / "prefect.db").exists()

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
    # The server made no SQLite database of its own to fall back on (in its own home: the
    # clients' home may hold one that another test's in-process Prefect made).
    assert not (Path(prefect_server["home"]) / "prefect.db").exists()


def test_the_recipe_keeps_the_password_off_command_lines_and_encodes_it_in_the_url(tmp_path):
    from tests.system_packages import missing

    if os.geteuid() != 0 or (why := missing(["postgresql"], ["pg_lsclusters"])):
        pytest.skip("needs root and Debian's postgresql" if os.geteuid() != 0 else why)
    # Every command the recipe starts through runuser (psql among them), with its arguments:
    # what `ps` shows every user of the host.
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    argv_log = tmp_path / "argv.log"
    real = subprocess.run(["which", "runuser"], capture_output=True, text=True, check=True).stdout.strip()
    (wrappers / "runuser").write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {argv_log}\nexec {real} "$@"\n')
    (wrappers / "runuser").chmod(0o755)
    password = "p@ss:w/rd%é ?#"  # every character a URL's user part must not hold as is
    db = f"crucible_pw_{os.getpid()}"
    env = {**os.environ, "PATH": f"{wrappers}:{os.environ['PATH']}", "PREFECT_DB_PASSWORD": password}
    try:
        made = subprocess.run(["bash", str(RECIPE), db, db], capture_output=True, text=True, timeout=300, env=env)
        assert made.returncode == 0, made.stderr
        assert "psql" in argv_log.read_text() and password not in argv_log.read_text()
        url = re.search(r"CONNECTION_URL=(\S+)", made.stdout).group(1)
        assert password not in url and "%40" in url and "%C3%A9" in url
        # libpq decodes the URL as the server's driver does: the encoded password logs in.
        login = subprocess.run(
            ["psql", url.replace("postgresql+asyncpg", "postgresql"), "-tAc", "SELECT current_user"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert login.returncode == 0 and login.stdout.strip() == db, login.stderr
    finally:
        for what in (["dropdb", "--if-exists", db], ["dropuser", "--if-exists", db]):
            subprocess.run(["runuser", "-u", "postgres", "--", *what], capture_output=True, timeout=60)

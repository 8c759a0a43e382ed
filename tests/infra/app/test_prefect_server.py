"""The Prefect server: a UI that finds its API on any port, and basic auth beyond loopback."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from infra.app.prefect_server import check_bind, server_env, start_or_reuse


def test_binding_beyond_loopback_needs_an_auth_string(monkeypatch):
    monkeypatch.delenv("PREFECT_SERVER_API_AUTH_STRING", raising=False)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.1.1"):
        check_bind(host)
    with pytest.raises(ValueError, match=r"PREFECT_SERVER_API_AUTH_STRING='user:password'.*or bind 127\.0\.0\.1"):
        check_bind("0.0.0.0")
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "admin:s3cret")
    check_bind("0.0.0.0")


def test_the_ui_is_told_the_api_of_the_port_it_runs_on(monkeypatch):
    monkeypatch.delenv("PREFECT_UI_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")
    env = server_env("127.0.0.1", 4290)
    assert env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4290/api"
    assert "PREFECT_API_URL" not in env and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_a_reused_server_with_auth_is_called_with_its_credentials(monkeypatch, tmp_path):
    """A server an operator started (`crucible server` with PREFECT_SERVER_API_AUTH_STRING):
    the command that finds it running must send the same credentials, or every call is a 401."""
    from infra.app import prefect_server

    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "")  # restored (unset) after the test: the call sets it
    monkeypatch.delenv("PREFECT_API_AUTH_STRING")
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "admin:s3cret")
    monkeypatch.setattr(prefect_server, "healthy", lambda url, timeout=2.0: True)  # found running
    server = start_or_reuse("10.0.0.5", 4300, tmp_path)
    assert server.process is None and server.api_url == "http://10.0.0.5:4300/api"
    assert os.environ["PREFECT_API_AUTH_STRING"] == "admin:s3cret"


@pytest.mark.slow
@pytest.mark.e2e
def test_a_real_server_on_a_non_default_port_with_auth(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_UI_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "")  # restored (unset) after the test: the call sets it
    monkeypatch.delenv("PREFECT_API_AUTH_STRING")
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "admin:s3cret")
    server = start_or_reuse("127.0.0.1", 4291, tmp_path)
    try:
        settings = httpx.get(f"{server.ui_url}/ui-settings", timeout=10).json()
        assert settings["api_url"] == "http://127.0.0.1:4291/api"  # not the default port's
        assert httpx.get(f"{server.api_url}/health", timeout=10).status_code == 200  # exempt from auth
        body = {"limit": 1}
        assert httpx.post(f"{server.api_url}/flows/filter", json=body, timeout=10).status_code == 401
        ok = httpx.post(f"{server.api_url}/flows/filter", json=body, auth=("admin", "s3cret"), timeout=10)
        assert ok.status_code == 200
        assert httpx.get(f"{server.ui_url}/v2/", timeout=10).status_code == 200  # the V2 UI is served
    finally:
        server.stop()


@pytest.mark.root
def test_a_server_another_user_runs_on_the_port_is_not_reused(tmp_path):
    """On a shared host another user's server may answer on our port: reusing it would hand
    them every flow run's parameters and logs."""
    import shutil
    import socket
    import subprocess
    import time

    from infra.app.prefect_server import listener_uid

    system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")  # one `nobody` may run
    if os.geteuid() != 0 or not shutil.which("runuser") or not system_python:
        pytest.skip("needs root, runuser and a system python3, to run a server as another user")
    import tempfile

    site = Path(tempfile.mkdtemp(prefix="crucible-other-user-"))  # pytest's own tmp is root's alone
    (site / "api").mkdir()
    (site / "api" / "health").write_text("true")  # GET /api/health answers 200, as Prefect's does
    for p in (site, site / "api", site / "api" / "health"):
        p.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", system_python, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while listener_uid(port) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        nobody = int(subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout)
        assert listener_uid(port) == nobody
        with pytest.raises(RuntimeError, match=rf"port {port} belongs to another user \(uid {nobody}\).*prefect_port"):
            start_or_reuse("127.0.0.1", port, tmp_path / "logs")
        assert not (tmp_path / "logs").exists()  # nothing started either
    finally:
        other.kill()
        other.wait()
        shutil.rmtree(site)

"""Start or reuse a local Prefect server so flow runs show in its UI.

Its database is SQLite in ~/.prefect unless PREFECT_SERVER_DATABASE_CONNECTION_URL names a
PostgreSQL one (infra/deploy/postgres.sh). Beyond loopback it needs basic auth.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flows.cluster import LOOPBACK, QUIET_ENV, WILDCARD

log = logging.getLogger(__name__)


def check_bind(host: str) -> None:
    """Refuse to serve the API beyond this machine without basic auth."""
    if (host in LOOPBACK or host.startswith("127.")) or os.environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        return
    raise ValueError(
        f"binding the Prefect server to {host} would open its API, which can run and delete flows, to "
        f"the network without authentication; set PREFECT_SERVER_API_AUTH_STRING='user:password' (clients "
        f"then set PREFECT_API_AUTH_STRING to the same value), or bind 127.0.0.1"
    )


def server_env(host: str, port: int) -> dict[str, str]:
    """The server's environment. The UI learns where the API is from /ui-settings, which says
    port 4200 whatever port the server runs on unless PREFECT_UI_API_URL is set."""
    env = {**os.environ, **QUIET_ENV}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another API
    public = socket.gethostname() if host in WILDCARD else host
    env.setdefault("PREFECT_UI_API_URL", f"http://{public}:{port}/api")
    return env


def server_command(host: str, port: int) -> list[str]:
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    return [prefect, "server", "start", "--host", host, "--port", str(port), "--analytics-off"]


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class PrefectServer:
    api_url: str
    process: subprocess.Popen | None  # None when an already-running server is reused
    log_path: Path | None = None

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_or_reuse(host: str, port: int, log_dir: Path, wait_s: float = 90.0) -> PrefectServer:
    """Reuse a healthy server at host:port, or start one and wait until it answers."""
    check_bind(host)
    if os.environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        # This process and the flow runs it starts talk to the server as its clients, whether
        # this call starts it or finds it running (`crucible server` started by an operator).
        os.environ.setdefault("PREFECT_API_AUTH_STRING", os.environ["PREFECT_SERVER_API_AUTH_STRING"])
    api_url = f"http://{'127.0.0.1' if host in WILDCARD else host}:{port}/api"
    if healthy(api_url):
        log.info("reusing the Prefect server at %s", api_url)
        return PrefectServer(api_url, None)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"prefect-server-{port}.log"
    env = server_env(host, port)
    log.info("starting a Prefect server on %s:%d (log: %s)", host, port, log_path)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            server_command(host, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if healthy(api_url):
            return PrefectServer(api_url, proc, log_path)
        if proc.poll() is not None:
            raise RuntimeError(
                f"the Prefect server exited with code {proc.returncode} before it answered; "
                f"see {log_path} (is port {port} taken? set runtime.prefect_port)"
            )
        time.sleep(0.5)
    PrefectServer(api_url, proc).stop()
    raise RuntimeError(f"the Prefect server did not answer within {wait_s:.0f}s; see {log_path}")

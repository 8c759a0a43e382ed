"""Start or reuse a local Prefect server (SQLite) so flow runs show in its UI."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Offline, Prefect's telemetry calls fail and log errors on every run.
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


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
    api_url = f"http://{host}:{port}/api"
    if healthy(api_url):
        log.info("reusing the Prefect server at %s", api_url)
        return PrefectServer(api_url, None)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"prefect-server-{port}.log"
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    env = {**os.environ, **QUIET_ENV}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another API
    log.info("starting a Prefect server on %s:%d (log: %s)", host, port, log_path)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [prefect, "server", "start", "--host", host, "--port", str(port), "--analytics-off"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
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

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


def listener_uid(port: int) -> int | None:
    """The user id owning the socket that listens on TCP `port` in this network namespace
    (Linux's /proc/net/tcp{,6}), or None if none is found or the table is not there."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "ADDR:PORT" in hex, state 0A is LISTEN, then the owner's uid
            if len(fields) > 7 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[7])
    return None


def check_owner(port: int) -> None:
    """Refuse a server on this host that another user runs: its owner reads every flow run's
    parameters and logs, and can change what the runs do (deployments, states)."""
    uid = listener_uid(port)
    if uid is not None and uid != os.getuid():
        raise RuntimeError(
            f"the Prefect server answering on port {port} belongs to another user (uid {uid}), not to you "
            f"(uid {os.getuid()}); set runtime.prefect_port to a free port to start your own, or "
            f"runtime.prefect_api_url to report to that server on purpose"
        )


@dataclass
class PrefectServer:
    api_url: str
    process: subprocess.Popen | None  # None when an already-running server is reused
    log_path: Path | None = None
    ready_s: float | None = None  # how long a server this process started took to answer

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def wait_ready(self, wait_s: float = 90.0) -> PrefectServer:
        """Wait until a server this process started answers; at once for a reused one."""
        if self.process is None:
            return self
        started = time.monotonic()
        deadline = started + wait_s
        while time.monotonic() < deadline:
            if healthy(self.api_url):
                self.ready_s = time.monotonic() - started
                return self
            if self.process.poll() is not None:
                port = self.api_url.rsplit(":", 1)[1].split("/")[0]
                raise RuntimeError(
                    f"the Prefect server exited with code {self.process.returncode} before it answered; "
                    f"see {self.log_path} (is port {port} taken? set runtime.prefect_port)"
                )
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Prefect server did not answer within {wait_s:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def launch(host: str, port: int, log_dir: Path) -> PrefectServer:
    """Reuse a healthy server of this user's at host:port, or start one without waiting for
    it to answer (`wait_ready`), so that Ray can start meanwhile; a server another user runs
    there is refused (runtime.prefect_api_url names one to use on purpose)."""
    check_bind(host)
    if os.environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        # This process and the flow runs it starts talk to the server as its clients, whether
        # this call starts it or finds it running (`crucible server` started by an operator).
        os.environ.setdefault("PREFECT_API_AUTH_STRING", os.environ["PREFECT_SERVER_API_AUTH_STRING"])
    api_url = f"http://{'127.0.0.1' if host in WILDCARD else host}:{port}/api"
    if healthy(api_url):
        check_owner(port)
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
    return PrefectServer(api_url, proc, log_path)


def start_or_reuse(host: str, port: int, log_dir: Path, wait_s: float = 90.0) -> PrefectServer:
    """`launch`, then wait until the server answers."""
    return launch(host, port, log_dir).wait_ready(wait_s)

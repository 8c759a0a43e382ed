"""What the end-to-end tests share: where the CLI and the debug preset's relative paths are,
their Prefect server's port, a client of it, and a `crucible serve` running in the background."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CRUCIBLE = str(Path(sys.executable).parent / "crucible")
ROOT = Path(__file__).resolve().parents[2]  # the debug preset's paths are relative to it
PORT = 4219  # not the default 4200, so a developer's own server is left alone


@contextlib.contextmanager
def prefect_client(api: str) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        yield client


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def serving(api: str, name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """`crucible serve -c debug --name NAME ARGS...` until the block ends (then SIGINT, as a
    user's Ctrl-C); yields the deployment."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CRUCIBLE, "serve", "-c", "debug", "--name", name, "--set", f"runtime.prefect_port={PORT}", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        wait_for(lambda: "being served" in log.read_text(errors="replace") or proc.poll() is not None, 180, "serve")
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        with prefect_client(api) as client:
            yield client.read_deployment_by_name(f"pipeline/{name}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

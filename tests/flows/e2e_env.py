"""What the end-to-end tests share: a client of the session's Prefect server, waiting for a
condition, and a `crucible serve` running in the background. The server, the Ray head and
the session's pipeline run are fixtures of tests/conftest.py (started once, tests/services.py)."""

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.services import CRUCIBLE, ROOT, Services

__all__ = ["CRUCIBLE", "ROOT", "crucible", "curate", "prefect_client", "serving", "wait_for"]


def crucible(*args: str, timeout: float = 900, **kw: Any) -> subprocess.CompletedProcess:
    """A `crucible` command from the repository root (the debug preset's paths are relative to it)."""
    return subprocess.run([CRUCIBLE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def curate(e2e: Services, runs: Path, run_id: str, input_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """`crucible curate` of the debug preset on `input_path`, with the steps that need a corpus of
    some size (planted noise, the quality classifier, MinHash) off: for tests of the readers."""
    return crucible(
        "curate", "-c", "debug", "--run-id", run_id, "--set", f"runs_dir={runs}", *e2e.runtime_sets(),
        "--set", f"curation.input_path={input_path}", "--set", "curation.noise=null",
        "--set", "curation.quality_classifier.enabled=false", "--set", "curation.minhash.enabled=false", *extra,
    )  # fmt: skip


@contextlib.contextmanager
def prefect_client(api: str) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        yield client


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 1.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def serving(e2e: Services, name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """`crucible serve -c debug --name NAME ARGS...` on the shared server and Ray head until
    the block ends (then SIGINT, as a user's Ctrl-C); yields the deployment. Its runner looks
    for due runs every 2 s instead of Prefect's 10 s, so the tests wait less."""
    run_env = {**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "2", **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CRUCIBLE, "serve", "-c", "debug", "--name", name, *e2e.runtime_sets(), *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env=run_env,
        )  # fmt: skip
    try:
        wait_for(lambda: "being served" in log.read_text(errors="replace") or proc.poll() is not None, 180, "serve")
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        with prefect_client(e2e.api) as client:
            yield client.read_deployment_by_name(f"pipeline/{name}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

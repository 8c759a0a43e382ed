"""An MLflow client for one tracking URI, and the warning a tracking failure becomes.

MLflow is imported here, on first use, never at import: runs without tracking do not pay its
import time. A tracking server that is down must cost a run seconds, not MLflow's default of
minutes of retries with backoff, so requests get a bounded timeout and no retries unless the
operator set MLflow's own environment variables.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def default_uri(runs_dir: str | Path) -> str:
    """A local store beside the runs: sqlite:///<runs_dir>/mlflow.db (absolute)."""
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def local_artifacts(uri: str) -> str | None:
    """Where a new experiment in a local SQLite store keeps its artifacts: beside the database
    (MLflow's default is ./mlruns in whatever folder the command runs from); None for a
    server, which decides itself."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()


def mlflow_client(uri: str, timeout_s: float) -> Any:
    """An `mlflow.MlflowClient` for `uri` (with its artifacts found through the same server)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(timeout_s))))
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class OnceWarning:
    """Tracking is best effort: its first failure is a warning naming the cause, and every
    later call is dropped without a request (a server that is down stays down for a while)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failed = False

    def failure(self, exc: BaseException) -> None:
        if not self.failed:
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            log.warning("MLflow tracking failed (%s: %s); %s goes on without it", type(exc).__name__, first, self.what)
        self.failed = True

"""`runs/<id>/mlflow_run.json`: which MLflow run a run directory is tracked in, so that a
resume continues that run, training's rank 0 finds where to send its metrics, and
`crucible export` where to register the model. Reading it needs no MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infra.core.storage import read_json, write_json

RECORD = "mlflow_run.json"


@dataclass(frozen=True)
class TrackedRun:
    """One run directory's MLflow run, and whether this run's current command tracks it
    (`active`: false once a later command of the run turned tracking off)."""

    uri: str
    experiment_id: str
    run_id: str
    model_name: str
    active: bool = True
    timeout_s: float = 10.0
    flush_timeout_s: float = 60.0

    def url(self) -> str:
        """The run's page: on the tracking server, or in `mlflow ui` over a local store."""
        page = f"#/experiments/{self.experiment_id}/runs/{self.run_id}"
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/{page}"
        return f"`mlflow ui --backend-store-uri {self.uri}`, then {page}"


def record_path(run_root: Path) -> Path:
    return run_root / RECORD


def read_record(run_root: Path) -> TrackedRun | None:
    """The run directory's MLflow run, or None if it was never tracked (or the file is unreadable)."""
    path = record_path(run_root)
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = read_json(path)
        return TrackedRun(**data)
    except (ValueError, TypeError, OSError):
        return None


def write_record(run_root: Path, record: TrackedRun) -> None:
    write_json(record_path(run_root), asdict(record))


def active_record(run_root: Path) -> TrackedRun | None:
    """The MLflow run this run directory's commands log to now, or None."""
    record = read_record(run_root)
    return record if record is not None and record.active else None


def link_line(run_root: Path) -> str | None:
    """The line a command prints about the run directory's MLflow run, if it is tracked."""
    record = active_record(run_root)
    return f"MLflow run: {record.url()}" if record is not None else None

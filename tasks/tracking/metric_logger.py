"""Training's per-step metrics to MLflow, from rank 0, without ever blocking a step: the loop
puts each step's record on a queue and a background thread sends them in batches.

Each step is logged once. MLflow's metric history accepts several values for one step, so a
resumed run (the steps after its checkpoint trained again) or a roll-back (the steps after
it trained again on other data) would otherwise show those steps twice: the thread reads
the last step the MLflow run already holds and skips records up to it. Those steps keep the
values first logged (after an exact resume, the same values).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from tasks.tracking.client import OnceWarning, mlflow_client
from tasks.tracking.run_record import TrackedRun, active_record

log = logging.getLogger(__name__)

MARKER_KEY = "loss"  # every step record has it, and a record is sent in one request
RECORDS_PER_BATCH = 50  # taken from the queue at once; sent in requests of at most METRICS_PER_REQUEST
METRICS_PER_REQUEST = 1000  # MLflow's limit per log_batch (a step with eval/<task>/<metric> keys has more than 20)
QUEUE_LIMIT = 100_000  # records; past it (a server far slower than training) new ones are dropped
_STOP = None


def open_metric_logger(run_root: Path) -> MetricLogger | None:
    """The logger of the run directory's active MLflow run, or None when it is not tracked."""
    record = active_record(run_root)
    return MetricLogger(record) if record is not None else None


class MetricLogger:
    """A queue and the thread that empties it into one MLflow run."""

    def __init__(self, record: TrackedRun) -> None:
        self.record = record
        self.warning = OnceWarning("training")
        self.dropped = 0
        self._queue: queue.Queue[tuple[int, dict[str, Any]] | None] = queue.Queue(QUEUE_LIMIT)
        self._thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def log(self, record: dict[str, Any]) -> None:
        """Queue one step's record (never waits)."""
        try:
            self._queue.put_nowait((int(time.time() * 1000), record))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Send what is queued, waiting at most the record's flush_timeout_s."""
        deadline = time.monotonic() + self.record.flush_timeout_s
        # A thread far behind: what it has not sent by the deadline is dropped.
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=self.record.flush_timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive() or self.dropped:
            log.warning(
                "MLflow: %s step records not sent within %.0f s (tracking.mlflow.flush_timeout_s) were dropped",
                f"{self._queue.qsize() + self.dropped:,}",
                self.record.flush_timeout_s,
            )

    def _run(self) -> None:
        client, last = None, 0
        try:
            client = mlflow_client(self.record.uri, self.record.timeout_s)
            history = client.get_metric_history(self.record.run_id, MARKER_KEY)
            last = max((m.step for m in history), default=0)
        except Exception as exc:  # best effort: a tracking failure never fails training
            self.warning.failure(exc)
        while True:
            batch, stop = self._take()
            batch = [(t, r) for t, r in batch if r["step"] > last]
            for request in _requests(batch):
                if client is None or self.warning.failed:
                    break
                try:
                    client.log_batch(self.record.run_id, metrics=_metrics(request), synchronous=True)
                    last = max(r["step"] for _, r in request)
                except Exception as exc:
                    self.warning.failure(exc)
            if stop:
                return

    def _take(self) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        """The next records (waiting for the first), at most a batch; whether the stop came."""
        batch: list[tuple[int, dict[str, Any]]] = []
        item = self._queue.get()
        while item is not _STOP:
            assert item is not None
            batch.append(item)
            if len(batch) >= RECORDS_PER_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True


def _requests(batch: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """Consecutive records grouped into log_batch requests of at most METRICS_PER_REQUEST
    metrics; a record is never split, so its marker key arrives with all its metrics."""
    requests: list[list[tuple[int, dict[str, Any]]]] = []
    size = 0
    for item in batch:
        n = len(_values(item[1]))
        if not requests or size + n > METRICS_PER_REQUEST:
            requests.append([])
            size = 0
        requests[-1].append(item)
        size += n
    return requests


def _metrics(batch: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    """MLflow metrics of step records: the metrics.jsonl keys (MLflow takes `eval/arc_easy/acc`
    as it is: '/' is one of its name characters), step = the training step."""
    from mlflow.entities import Metric

    return [Metric(key, value, t, record["step"]) for t, record in batch for key, value in _values(record)]


def _values(record: dict[str, Any]) -> list[tuple[str, float]]:
    """The record's numbers, each one MLflow metric."""
    return [
        (key, float(value))
        for key, value in record.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]

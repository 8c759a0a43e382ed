"""Thin Prefect task wrapper around training (it drives Ray Train from the flow's process),
with live progress: the Prefect UI shows a progress artifact and a metrics table that are
updated while the ranks train, read from the run's metrics.jsonl."""

from __future__ import annotations

import contextvars
import logging
import threading
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.tasks import exponential_backoff

from infra.core.storage import RunDir
from models.config import ModelConfig
from tasks.training.config import TrainingConfig
from tasks.training.metrics import eval_keys, read_metrics
from tasks.training.trainer import run_training
from tasks.transient import retry_transient

log = logging.getLogger(__name__)
TABLE_KEYS = ("step", "loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb")


def metrics_table(records: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation and benchmark steps (and the last step), with a column per `eval/<task>/<metric>`,
    plus one row per spike event."""
    evals = eval_keys(records)
    keys = (*TABLE_KEYS, *evals)
    shown = [r for r in records if "val_loss" in r or any(k in r for k in evals) or r is records[-1]]
    rows = [{k: r.get(k) for k in keys} for r in shown]
    rows += [{**dict.fromkeys(keys), "step": e["step"], "event": f"{e['event']}: {e['reason']}"} for e in events]
    return sorted(rows, key=lambda r: r["step"])


class LiveProgress:
    """Polls metrics.jsonl in a thread of the task (with the task's Prefect context) and
    publishes the step count and the metrics table as they grow."""

    def __init__(self, run: RunDir, max_steps: int, every_s: float = 10.0):
        self.run, self.max_steps, self.every_s = run, max_steps, every_s
        self._stop = threading.Event()
        self._seen = -1
        # Called from synchronous code: the artifact's id, not a coroutine.
        self.artifact_id = cast(
            UUID, create_progress_artifact(0.0, key="training-progress", description=f"steps done of {max_steps}")
        )
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._poll,), daemon=True)

    def __enter__(self) -> LiveProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self.publish()
        except Exception as err:  # never replace the training's own outcome
            log.warning("could not publish the final training progress to Prefect: %s", err)

    def _poll(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.publish()
            except Exception as exc:  # the UI is a view: a failed update must not stop training
                log.warning("could not update the training progress in Prefect: %s", exc)

    def publish(self) -> None:
        records, events = read_metrics(self.run.metrics)
        if not records or len(records) + len(events) == self._seen:
            return
        self._seen = len(records) + len(events)
        update_progress_artifact(self.artifact_id, 100.0 * records[-1]["step"] / self.max_steps)
        last = records[-1]
        create_table_artifact(
            key="training-metrics",
            table=metrics_table(records, events),
            description=f"step {last['step']}/{self.max_steps}, loss {last['loss']:.4g}"
            + (f", {len(events)} spike event(s)" if events else ""),
        )


# Retries (TrainingConfig.retries, set by the flow) only for transient failures.
@task(name="deepspeed-train", retry_condition_fn=retry_transient, retry_delay_seconds=exponential_backoff(10))
def train_task(
    run_dir: str,
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    init_from: str | None = None,
    benchmarks_dir: str | None = None,
) -> dict[str, Any]:
    run = RunDir(Path(run_dir).resolve())
    with LiveProgress(run, cfg.max_steps):
        return run_training(run.root, model_cfg, cfg, Path(init_from) if init_from else None, benchmarks_dir)

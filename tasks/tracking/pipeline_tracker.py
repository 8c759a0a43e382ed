"""What the pipeline flow sends to MLflow: one MLflow run per run directory (continued by a
resume or re-run), holding the resolved config as parameters, each stage's totals and
evaluation results as metrics, the stages and Prefect flow run as tags, and the report, loss
curve and training summary as artifacts. Training's per-step metrics come from its rank 0
(tasks/tracking/metric_logger.py), into the same MLflow run.

Best effort throughout: a tracking server that is down is one warning, then nothing more is
sent for this command; the pipeline itself goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from infra.core.storage import RunDir, read_json
from tasks.tracking.client import OnceWarning, default_uri, local_artifacts, mlflow_client
from tasks.tracking.config import MlflowConfig
from tasks.tracking.run_record import TrackedRun, read_record, write_record

log = logging.getLogger(__name__)

PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a parameter's value
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch
NOT_A_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")  # what MLflow refuses in a metric or parameter name


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (`training.max_steps`); lists and scalars are leaves."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def numeric(flat: dict[str, Any]) -> dict[str, float]:
    """The numbers among flattened values, under names MLflow accepts."""
    return {
        NOT_A_KEY.sub("_", k): float(v)
        for k, v in flat.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class PipelineTracker:
    """One command's view of the run directory's MLflow run; a no-op when tracking is off."""

    def __init__(self, record: TrackedRun | None = None, client: Any = None) -> None:
        self.record = record
        self.client = client
        self.warning = OnceWarning("the pipeline")

    @classmethod
    def open(
        cls, cfg: MlflowConfig, run: RunDir, runs_dir: str, config: dict[str, Any], flow_run_id: str | None
    ) -> PipelineTracker:
        """Start (or continue) the run directory's MLflow run, record it in mlflow_run.json
        and log the config; with tracking off, mark an earlier record inactive so that
        training's rank 0 sends nothing."""
        earlier = read_record(run.root)
        if not cfg.enabled:
            if earlier is not None and earlier.active:
                write_record(run.root, dataclasses.replace(earlier, active=False))
            return cls()
        tracker = cls()
        try:
            tracker._start(cfg, run, runs_dir, earlier, flow_run_id)
            tracker._log_params(config)
        except Exception as exc:  # best effort: tracking never fails the run
            tracker.warning.failure(exc)
        return tracker

    def _start(
        self, cfg: MlflowConfig, run: RunDir, runs_dir: str, earlier: TrackedRun | None, flow_run_id: str | None
    ) -> None:
        uri = cfg.uri or default_uri(runs_dir)
        self.client = client = mlflow_client(uri, cfg.timeout_s)
        run_id = earlier.run_id if earlier is not None and earlier.uri == uri and self._exists(earlier.run_id) else None
        if run_id is None:
            experiment = client.get_experiment_by_name(cfg.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment
                else client.create_experiment(cfg.experiment, artifact_location=local_artifacts(uri))
            )
            run_id = client.create_run(experiment_id, run_name=run.root.name).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")  # a resume: the same MLflow run goes on
            experiment_id = client.get_run(run_id).info.experiment_id
        self.record = TrackedRun(uri, experiment_id, run_id, cfg.model_name, True, cfg.timeout_s, cfg.flush_timeout_s)
        write_record(run.root, self.record)  # before training starts: its rank 0 reads it
        tags = {"crucible.run_id": run.root.name, "crucible.run_dir": str(run.root)}
        if flow_run_id:
            tags["prefect.flow_run_id"] = flow_run_id
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    def _exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
                return False  # deleted, or another store: a new MLflow run
            raise

    def _log_params(self, config: dict[str, Any]) -> None:
        """The resolved config as parameters, once each: MLflow refuses a parameter changed
        on a continued run, so a resume's changed values are tags (`param_changed.<key>`)."""
        from mlflow.entities import Param

        assert self.record is not None
        run_id = self.record.run_id
        known = self.client.get_run(run_id).data.params
        params = {
            NOT_A_KEY.sub("_", k)[:250]: (v if isinstance(v, str) else json.dumps(v))[:PARAM_VALUE_LIMIT]
            for k, v in flatten(config).items()
        }
        new = [Param(k, v) for k, v in params.items() if k not in known]
        for i in range(0, len(new), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=new[i : i + PARAMS_PER_BATCH], synchronous=True)
        for k, v in params.items():
            if k in known and known[k] != v:
                self.client.set_tag(run_id, f"param_changed.{k}"[:250], v[:PARAM_VALUE_LIMIT])

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The block of the pipeline's stages: an error in it ends the MLflow run FAILED."""
        try:
            yield
        except BaseException:
            self._call("set_terminated", self.record.run_id if self.record else "", "FAILED")
            raise

    @property
    def on(self) -> bool:
        return self.record is not None and not self.warning.failed

    def _call(self, what: str, *args: Any) -> None:
        """One client call, or nothing once tracking has failed."""
        if not self.on:
            return
        try:
            getattr(self.client, what)(*args)
        except Exception as exc:
            self.warning.failure(exc)

    def stage(self, name: str, run: RunDir, action: str) -> None:
        """A stage ran or was kept (`action`: "ran" or "skipped"): its tag, and the totals
        its output holds, as metrics (a kept stage's too: a resumed run shows every stage)."""
        if not self.on:
            return
        assert self.record is not None
        self._call("set_tag", self.record.run_id, f"crucible.stage.{name}", action)
        metrics = stage_metrics(name, run)
        if metrics:
            from mlflow.entities import Metric

            step, values = metrics
            now = int(time.time() * 1000)
            batch = [Metric(k, v, now, step) for k, v in values.items()]
            for i in range(0, len(batch), 1000):
                self._call("log_batch", self.record.run_id, batch[i : i + 1000])

    def finish(self, run: RunDir, status: str = "FINISHED") -> None:
        """The run's files as artifacts, and its MLflow status."""
        if not self.on:
            return
        assert self.record is not None
        for path in (run.report, run.loss_curve, run.eval_curves, run.train_summary, run.config):
            if path.is_file():
                self._call("log_artifact", self.record.run_id, str(path))
        self._call("set_terminated", self.record.run_id, status)


def stage_metrics(name: str, run: RunDir) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) a finished stage left in the run directory: curation's and
    tokenization's totals, training's summary, evaluation's scores (at the trained step)."""
    files = {
        "curate": run.curation_stats,
        "tokenize": run.manifest,
        "train": run.train_summary,
        "evaluate": run.eval_results,
    }
    path = files.get(name)
    if path is None or not path.is_file():
        return None
    data = read_json(path)
    if name == "curate":
        return 0, numeric(flatten(data.get("totals", {}), "curate"))
    if name == "tokenize":
        return 0, numeric(flatten({"splits": data.get("splits", {}), "vocab_size": data.get("vocab_size")}, "tokenize"))
    if name == "train":
        keep = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
        return int(data.get("steps", 0)), numeric(flatten(keep, "train"))
    scores = {"tasks": data.get("tasks", {}), "perplexity": data.get("perplexity", {})}
    return int(data.get("step") or 0), numeric(flatten(scores, "eval"))

"""The `tracking` section of the pipeline config: where a run's parameters, metrics and files
are also sent (MLflow), beside the run directory's own metrics.jsonl and TensorBoard.

Not part of any stage's config section: turning tracking on, or pointing it elsewhere, never
changes a stage's key, so no stage is redone for it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MlflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False, description="Send each pipeline run to MLflow as one MLflow run (needs the `tracking` extra)."
    )
    uri: str | None = Field(
        None,
        description="MLflow tracking URI: a tracking server's URL (http://host:5000) or a store such as "
        "sqlite:///path/mlflow.db. Defaults to sqlite:///<runs_dir>/mlflow.db.",
    )
    experiment: str = Field("crucible", min_length=1, description="MLflow experiment the runs are logged under.")
    model_name: str = Field(
        "crucible",
        min_length=1,
        description="Registered model that `crucible export` adds a version to, for a run tracked in MLflow.",
    )
    timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds one request to the tracking server may take; past it the server counts as down "
        "(a warning: the run goes on without tracking).",
    )
    flush_timeout_s: float = Field(
        60.0,
        ge=0,
        description="Seconds the end of training waits for the metrics still queued for MLflow before dropping them.",
    )


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mlflow: MlflowConfig = Field(MlflowConfig(), description="MLflow tracking (off by default).")

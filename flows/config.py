"""The pipeline configuration: one typed section per stage, plus where Prefect and Ray run.

The flows take it as their parameter (a deployment's parameters are this model, dumped);
loading it from presets, YAML and `--set` overrides is the application's job (infra/app/config.py).
"""

from __future__ import annotations

import datetime as dt
import re

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.config import ModelConfig
from tasks.curation.config import CurationConfig
from tasks.evaluation.config import EvaluationConfig
from tasks.scaling.config import SweepConfig
from tasks.tokenization.config import TokenizationConfig
from tasks.tracking.config import TrackingConfig
from tasks.training.config import TrainingConfig


class RuntimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefect_host: str = Field("127.0.0.1", description="Bind address of the local Prefect server.")
    prefect_port: int = Field(
        4200,
        ge=1,
        le=65535,
        description="Port of the local Prefect server and UI (a server already running there is reused).",
    )
    prefect_api_url: str | None = Field(None, description="Use this Prefect API instead of starting a local server.")
    ray_address: str | None = Field(None, description="Join this Ray cluster instead of a local one.")
    ray_num_cpus: int | None = Field(None, ge=1, description="Logical CPUs of a local Ray instance.")
    ray_dashboard: bool = Field(
        False,
        description="Start Ray's dashboard with a local Ray instance for every command; by default only the "
        "commands that train start it (Ray Train reads Ray's state API from it), the others start faster.",
    )


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # one folder name, never a path


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(
        None, description="The run's folder under runs_dir: letters, digits, '.', '_' and '-'. Defaults to a timestamp."
    )
    runs_dir: str = Field("runs", description="Folder holding one run directory per run id.")
    seed: int = Field(
        0,
        description="Recorded with the run's config; each stage's randomness has its own seed "
        "(curation.minhash.seed, training.seed, ...).",
    )
    previous_run: str | None = Field(
        None,
        description="A finished run this one builds on: with curation.incremental its unchanged input "
        "files are skipped and its documents deduplicated against; with training.init_from_previous its "
        "final model is the starting point. A served deployment's runs default to its newest finished run.",
    )
    runtime: RuntimeConfig = Field(
        RuntimeConfig(), description="Where Prefect and Ray run: a local server and Ray instance, or existing ones."
    )
    curation: CurationConfig = Field(
        CurationConfig(),
        description="The curation stage: reading, web extraction, heuristic rules, quality classifier, "
        "decontamination, dedup and PII redaction.",
    )
    tokenization: TokenizationConfig = Field(
        TokenizationConfig(),
        description="The tokenization stage: BPE training and packing the curated text into token shards.",
    )
    model: ModelConfig = Field(ModelConfig(), description="The decoder-only transformer's architecture.")
    training: TrainingConfig = Field(
        TrainingConfig(),
        description="The training stage: Ray Train workers running DeepSpeed, its optimizer, schedule and checkpoints.",
    )
    evaluation: EvaluationConfig = Field(
        EvaluationConfig(), description="The evaluation stage: benchmarks, perplexity, generation tasks and judges."
    )
    tracking: TrackingConfig = Field(
        TrackingConfig(), description="Experiment tracking (MLflow, off by default); part of no stage's key."
    )
    sweep: SweepConfig = Field(
        SweepConfig(),
        description="`crucible sweep`: a grid of model shapes and budgets trained on this run's shards, and the "
        "scaling laws fitted to their losses; `crucible run` ignores it.",
    )

    @field_validator("run_id")
    @classmethod
    def _run_id_is_a_folder_name(cls, value: str | None) -> str | None:
        # Checked here, not only where the CLI loads a config: a deployment's parameters and
        # library callers build this model too, and "../x" would leave runs_dir.
        if value is not None and not RUN_ID.fullmatch(value):
            raise ValueError(
                f"run_id {value[:120]!r} may hold only letters, digits, '.', '_' and '-' (starting with a "
                f"letter or digit, at most 100 characters)"
            )
        return value

    @model_validator(mode="after")
    def _decontaminate_against_evaluation(self) -> PipelineConfig:
        # Decontamination should cover exactly what the run will be evaluated on, unless told otherwise.
        dc = self.curation.decontamination
        if dc.enabled and not dc.benchmark_paths:
            dc.benchmark_paths = self.evaluation.benchmark_files()
        return self

    def resolved_run_id(self) -> str:
        return self.run_id or dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def dump_config(cfg: PipelineConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)

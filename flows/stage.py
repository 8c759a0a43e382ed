"""What a stage is, and the list of them in pipeline order.

Every part of Crucible that deals with stages loops over `PIPELINE`: the pipeline flow runs
them in order, `crucible <stage>` runs one, the stage keys (flows/stages.py) hash what each
reads, `stages.json` records them, preflight runs their checks, and the CLI has one verb per
entry. A new stage is one `Stage` here and its flow; nothing else names stages.

A stage's flow is named by its import path and imported only when it runs: flows import
Prefect, Ray and torch, which the CLI loads only after the config has been checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.config import PipelineConfig
from infra.core.storage import RunDir
from infra.core.task_markers import read_marker

# What the pipeline is told, before a stage runs, about the stages' plan: stage -> action.
Actions = dict[str, str]


def skips(action: str | None) -> bool:
    """Whether a planned action (flows/stages.py:plan) leaves the stage's output as it is."""
    return action is not None and (action == "skip" or action.startswith("skip ("))


def _nothing(cfg: PipelineConfig, run: RunDir, actions: Actions) -> None:
    """A stage without checks of its own before any server or worker starts."""


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, described once.

    - `flow`: "module:function" of its Prefect flow; `arguments(cfg, run_dir)` are what it is
      called with, the same for `crucible run` and `crucible <name>`.
    - `section`: the PipelineConfig field it reads; `config(cfg)` (the section by default) is
      the part of the config its key hashes: edit it and the stage is redone.
    - `code`: the folders and files whose source decides its output (also in its key).
    - `done`: the file it writes atomically as its last act; its existence means finished.
    - `preflight`: input and config checks run before any server, Ray worker or engine starts.
    - `stop_after`: a reason the later stages have nothing to do after this one, or None.
    """

    name: str
    help: str
    flow: str
    section: str
    arguments: Callable[[PipelineConfig, str], tuple[Any, ...]]
    code: tuple[str, ...]
    done: Callable[[RunDir], Path]
    config: Callable[[PipelineConfig], dict[str, Any]] | None = None
    inputs: Callable[[PipelineConfig], Any] = lambda cfg: None
    preflight: Callable[[PipelineConfig, RunDir, Actions], None] = _nothing
    stop_after: Callable[[PipelineConfig, RunDir], str | None] = lambda cfg, run: None
    starts_run: bool = False  # may start a new run directory (the others need an existing one)
    takes_trust: bool = False  # accepts --trust-checkpoint

    def load_flow(self) -> Callable[..., Any]:
        module, _, name = self.flow.partition(":")
        return getattr(importlib.import_module(module), name)

    def config_of(self, cfg: PipelineConfig) -> dict[str, Any]:
        if self.config is not None:
            return self.config(cfg)
        section: Any = getattr(cfg, self.section)
        return section.model_dump(mode="json")


def previous_key(cfg: PipelineConfig, stage: str) -> str | None:
    """The key the previous run's stage finished with (its path if it recorded none)."""
    if not cfg.previous_run:
        return None
    rec = (read_marker(Path(cfg.previous_run) / "stages.json") or {}).get(stage, {})
    return rec.get("key") or str(Path(cfg.previous_run).resolve())


# --- curate -----------------------------------------------------------------------------


def _curate_config(cfg: PipelineConfig) -> dict[str, Any]:
    section = cfg.curation.model_dump(mode="json")
    if cfg.curation.incremental:  # built on an earlier run's curation: that is an input too
        section["previous_run"] = previous_key(cfg, "curate")
    return section


def _curate_inputs(cfg: PipelineConfig) -> Any:
    from tasks.corpus.builtin import builtin_corpus

    if builtin_corpus(cfg.curation.input_path) is not None:
        return None  # built from pinned sources: its name is its identity
    from tasks.curation.reader import discover_inputs, inputs_fingerprint

    files, _ = discover_inputs(cfg.curation.input_path)
    return inputs_fingerprint(files)


def _curate_preflight(cfg: PipelineConfig, run: RunDir, actions: Actions) -> None:
    if skips(actions.get("curate")):
        return
    qc = cfg.curation.quality_classifier
    if qc.enabled and qc.model_path:
        from tasks.curation.quality_model import check_quality_model

        check_quality_model(Path(qc.model_path))
    from tasks.corpus.builtin import builtin_corpus

    if (corpus := builtin_corpus(cfg.curation.input_path)) is not None:
        corpus.check_available()
        return
    from tasks.curation.reader import PARQUET_SUFFIXES, discover_inputs, open_parquet

    for path in discover_inputs(cfg.curation.input_path)[0]:
        if path.name.endswith(PARQUET_SUFFIXES):
            open_parquet(path, cfg.curation.text_field)  # the footer only: a run does not stop on it later


def _nothing_new(cfg: PipelineConfig, run: RunDir) -> str | None:
    from infra.core.storage import read_json

    if cfg.curation.incremental and not read_json(run.curation_stats)["totals"]["docs_kept"]:
        return f"nothing new to curate since {cfg.previous_run}"
    return None


# --- train ------------------------------------------------------------------------------


def _train_config(cfg: PipelineConfig) -> dict[str, Any]:
    """Leaves out the keys that change how training runs but not the model it makes (cadences,
    retention, resources, sinks); a run that continues an earlier one depends on its model."""
    from tasks.training.config import OPERATIONAL_KEYS

    training = {k: v for k, v in cfg.training.model_dump(mode="json").items() if k not in OPERATIONAL_KEYS}
    if cfg.training.init_from_previous:
        training["previous_run"] = previous_key(cfg, "train")
    return {"model": cfg.model.model_dump(mode="json"), "training": training}


def _train_arguments(cfg: PipelineConfig, run_dir: str) -> tuple[Any, ...]:
    from flows.lineage import init_from

    return (cfg.model, cfg.training, run_dir, init_from(cfg), _eval_benchmarks(cfg))


def _eval_benchmarks(cfg: PipelineConfig) -> str | None:
    """The evaluation stage's benchmark folder, which training.eval_tasks read (its bundled
    samples where benchmarks_dir does not exist, as the evaluate stage does)."""
    root = cfg.evaluation.benchmarks_root() if cfg.training.eval_tasks else None
    return str(root) if root is not None else None


def _train_preflight(cfg: PipelineConfig, run: RunDir, actions: Actions) -> None:
    runs_training = "train" in actions and not skips(actions["train"])
    if runs_training and run.checkpoints.is_dir():
        from tasks.training.resumable_changes import check_resumable

        check_resumable(run, cfg.training, cfg.model, None)  # precision is compared once Ray is up
    from tasks.training.checks import check_training

    check_training(cfg.training, cfg.model)  # the device-dependent checks follow once Ray is up
    if runs_training:
        from tasks.training.eval_tasks import check_eval_tasks

        # With the run's tokenizer and window only when tokenize will not make new ones.
        check_eval_tasks(cfg.training, _eval_benchmarks(cfg), run if skips(actions.get("tokenize", "skip")) else None)
    if runs_training and skips(actions.get("tokenize", "skip")):
        from tasks.tokenization.reader import check_shards

        check_shards(run)  # what every rank checks on start, before any worker starts


PIPELINE: list[Stage] = [
    Stage(
        name="curate",
        help="filter, deduplicate and redact documents into curated Parquet shards",
        flow="flows.curate:curate_flow",
        section="curation",
        arguments=lambda cfg, run_dir: (cfg.curation, run_dir, cfg.previous_run),
        code=("tasks/curation", "tasks/corpus", "flows/curate.py"),
        done=lambda run: run.curation_stats,
        config=_curate_config,
        inputs=_curate_inputs,
        preflight=_curate_preflight,
        stop_after=_nothing_new,
        starts_run=True,
    ),
    Stage(
        name="tokenize",
        help="train the BPE tokenizer and write packed token shards",
        flow="flows.tokenize:tokenize_flow",
        section="tokenization",
        arguments=lambda cfg, run_dir: (cfg.tokenization, run_dir),
        code=("tasks/tokenization", "flows/tokenize.py"),
        done=lambda run: run.manifest,
    ),
    Stage(
        name="train",
        help="train the model with DeepSpeed on Ray (resumes from the run's last checkpoint)",
        flow="flows.train:train_flow",
        section="training",
        arguments=_train_arguments,
        code=("tasks/training", "models", "flows/train.py"),
        done=lambda run: run.train_summary,
        config=_train_config,
        preflight=_train_preflight,
        takes_trust=True,
    ),
    Stage(
        name="evaluate",
        help="score the run's model: ARC, HellaSwag, MMLU, TruthfulQA and perplexity",
        flow="flows.evaluate:evaluate_flow",
        section="evaluation",
        arguments=lambda cfg, run_dir: (cfg.evaluation, run_dir),
        code=("tasks/evaluation", "models", "flows/evaluate.py"),
        done=lambda run: run.eval_results,
    ),
]


# The stages whose output every run of a sweep (flows/sweep.py) trains on, made once.
SHARD_STAGES = ("curate", "tokenize")


def stage_names() -> tuple[str, ...]:
    return tuple(s.name for s in PIPELINE)


def get_stage(name: str) -> Stage:
    for stage in PIPELINE:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; the stages are {', '.join(stage_names())}")

"""Stage keys: what each stage was made from, so a re-run or a retry skips exactly the
stages whose inputs, config section and code are unchanged, and redoes the rest.

A stage's key is a hash of its config section, its code (the source of its packages), the
key of the stage before it and, for curation, the input files. `stages.json` in the run
directory records each stage's key when it starts and when it finishes. A finished
training is never redone silently: a change that would redo it, or redo the data it was
trained on, is refused with what changed and the way out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.config import PipelineConfig
from infra.core.storage import RunDir, write_json
from infra.core.task_markers import changed_keys, read_marker
from tasks.training.config import OPERATIONAL_KEYS, RESUMABLE_CHANGES

STAGES = ("curate", "tokenize", "train", "evaluate")
_ROOT = Path(__file__).resolve().parents[1]
# The source that decides each stage's output: editing it makes the stage's key change.
_CODE = {
    "curate": ("tasks/curation", "tasks/corpus", "flows/curate.py"),
    "tokenize": ("tasks/tokenization", "flows/tokenize.py"),
    "train": ("tasks/training", "models", "flows/train.py"),
    "evaluate": ("tasks/evaluation", "models", "flows/evaluate.py"),
}


class StageChangeRefused(ValueError):
    """A change that would redo a finished training, or the data it was trained on."""


def stages_file(run: RunDir) -> Path:
    return run.root / "stages.json"


def done_marker(run: RunDir, stage: str) -> Path:
    """The file each stage writes atomically as its last act."""
    return {
        "curate": run.curation_stats,
        "tokenize": run.manifest,
        "train": run.train_summary,
        "evaluate": run.eval_results,
    }[stage]


def code_version(stage: str) -> str:
    h = hashlib.sha256()
    for part in _CODE[stage]:
        base = _ROOT / part
        for path in sorted([base] if base.is_file() else base.rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _previous_key(cfg: PipelineConfig, stage: str) -> str | None:
    """The key the previous run's stage finished with (its path if it recorded none)."""
    if not cfg.previous_run:
        return None
    rec = recorded(RunDir(Path(cfg.previous_run))).get(stage, {})
    return rec.get("key") or str(Path(cfg.previous_run).resolve())


def stage_config(stage: str, cfg: PipelineConfig) -> dict[str, Any]:
    """The config a stage's output depends on. Training leaves out the keys that change how
    it runs but not the model it makes (cadences, retention, resources, sinks). A run that
    builds on an earlier one depends on that run's curation or training too."""
    if stage == "curate":
        section = cfg.curation.model_dump(mode="json")
        if cfg.curation.incremental:
            section["previous_run"] = _previous_key(cfg, "curate")
        return section
    if stage == "tokenize":
        return cfg.tokenization.model_dump(mode="json")
    if stage == "train":
        training = {k: v for k, v in cfg.training.model_dump(mode="json").items() if k not in OPERATIONAL_KEYS}
        if cfg.training.init_from_previous:
            training["previous_run"] = _previous_key(cfg, "train")
        return {"model": cfg.model.model_dump(mode="json"), "training": training}
    return cfg.evaluation.model_dump(mode="json")


def _inputs(stage: str, cfg: PipelineConfig) -> Any:
    if stage != "curate" or cfg.curation.input_path in ("demo", "web-demo"):
        return None  # the built-in corpora are built from pinned sources: their name is their identity
    from tasks.curation.reader import discover_inputs, inputs_fingerprint

    files, _ = discover_inputs(cfg.curation.input_path)
    return inputs_fingerprint(files)


@dataclass(frozen=True)
class StageKey:
    stage: str
    config: dict[str, Any]
    code: str
    upstream: str | None
    inputs: Any

    @property
    def key(self) -> str:
        blob = json.dumps([self.stage, self.config, self.code, self.upstream, self.inputs], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def record(self, status: str) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": status,
            "config": self.config,
            "code": self.code,
            "upstream": self.upstream,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }


def expected_keys(cfg: PipelineConfig) -> dict[str, StageKey]:
    """Each stage's key if it is made from this config, its upstream made the same way."""
    keys: dict[str, StageKey] = {}
    upstream = None
    for stage in STAGES:
        keys[stage] = StageKey(stage, stage_config(stage, cfg), code_version(stage), upstream, _inputs(stage, cfg))
        upstream = keys[stage].key
    return keys


def recorded(run: RunDir) -> dict[str, dict[str, Any]]:
    return read_marker(stages_file(run)) or {}


def mark(run: RunDir, key: StageKey, status: str) -> None:
    """Record that a stage started ('running') or finished ('finished') with this key."""
    records = recorded(run)
    records[key.stage] = key.record(status)
    write_json(stages_file(run), records)


def is_current(run: RunDir, key: StageKey) -> bool:
    rec = recorded(run).get(key.stage)
    return bool(rec and rec["status"] == "finished" and rec["key"] == key.key and done_marker(run, key.stage).exists())


def _what_changed(rec: dict[str, Any], key: StageKey, records: dict[str, dict[str, Any]]) -> list[str]:
    why = [f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed_keys(rec["config"], key.config).items()]
    if rec.get("code") != key.code:
        why.append(f"the {key.stage} code changed (version {rec.get('code')} -> {key.code})")
    if rec.get("upstream") != key.upstream:
        before = STAGES[STAGES.index(key.stage) - 1]
        prev = records.get(before, {})
        why.append(
            f"its input, the {before} stage, changed"
            + ("" if prev.get("key") == key.upstream else " (its config, code or input files)")
        )
    return why or ["its recorded key differs"]


def plan(run: RunDir, cfg: PipelineConfig, wanted: tuple[str, ...] = STAGES) -> dict[str, str]:
    """For each wanted stage: 'skip' (finished with the same key; only when the whole pipeline
    runs: a stage command asked for is run) or the reason it runs. Raises StageChangeRefused,
    before anything runs, when that would redo a finished or started training or its data."""
    keys, records = expected_keys(cfg), recorded(run)
    trained = run.train_summary.exists() or any(run.checkpoints.glob("step*"))
    actions: dict[str, str] = {}
    for stage in wanted:
        key, rec = keys[stage], records.get(stage)
        if rec is None:
            actions[stage] = "not run yet" if not done_marker(run, stage).exists() else "no stage key recorded"
        elif rec["key"] != key.key:
            actions[stage] = "changed: " + "; ".join(_what_changed(rec, key, records))
            if trained and stage != "evaluate":
                _refuse(run, stage, rec, key, records)
        elif is_current(run, key):
            actions[stage] = "skip" if len(wanted) > 1 else "unchanged; run as asked"
        else:
            actions[stage] = "unfinished" if rec["status"] != "finished" else "its output is missing"
    return actions


def _refuse(run: RunDir, stage: str, rec: dict[str, Any], key: StageKey, records: dict[str, dict[str, Any]]) -> None:
    if stage == "train" and rec.get("upstream") == key.upstream:
        # An unfinished training whose own settings or code changed (a fix after a crash), or a
        # finished one given a change a resume may allow (more steps under a constant schedule):
        # the resume check (tasks/training/resumable_changes.py) decides, before training starts.
        if rec["status"] != "finished":
            return
        changed = changed_keys(rec["config"], key.config)
        if rec.get("code") == key.code and all(
            k.startswith("training.") and k.split(".")[1] in RESUMABLE_CHANGES for k in changed
        ):
            return
    what = "finished" if run.train_summary.exists() else "started (it has checkpoints)"
    raise StageChangeRefused(
        f"run {run.root.name}: its training {what} with another {stage} configuration, so redoing "
        f"{stage} would leave a model that config.yaml does not describe:\n  - "
        + "\n  - ".join(_what_changed(rec, key, records))
        + f"\nStart a new run for this configuration (another --run-id), or move {run.checkpoints} and "
        f"{run.train_summary.name} away to retrain this one. `crucible evaluate --run-id {run.root.name}` "
        f"evaluates the trained model as it is."
    )

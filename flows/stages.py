"""Stage keys and records: what each stage was made from, so a re-run or a retry skips exactly the
stages whose inputs, config section and code are unchanged, and redoes the rest.

A stage's key is a hash of its config section, its code (the source of its packages), the
key of the stage before it and, for curation, the input files. `stages.json` in the run
directory records each stage's key when it starts and when it finishes. A finished
training is never redone silently: a change that would redo it, or redo the data it was
trained on, is refused with what changed and the way out. `run_stage` runs a stage between
those two records. The stages themselves are described in flows/stage.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.config import PipelineConfig
from flows.stage import PIPELINE, Stage, get_stage, stage_names
from infra.core.storage import RunDir, disk_full, write_json
from infra.core.task_markers import changed_keys, read_marker
from tasks.training.config import RESUMABLE_CHANGES

_ROOT = Path(__file__).resolve().parents[1]


def __getattr__(name: str) -> Any:
    # STAGES is read from the live list, so a stage added to it (flows/stage.py) is a stage
    # everywhere, including in code that imported this module first.
    if name == "STAGES":
        return stage_names()
    raise AttributeError(name)


class StageChangeRefused(ValueError):
    """A change that would redo a finished training, or the data it was trained on."""


def stages_file(run: RunDir) -> Path:
    return run.root / "stages.json"


def done_marker(run: RunDir, stage: str) -> Path:
    """The file each stage writes atomically as its last act."""
    return get_stage(stage).done(run)


def code_version(stage: str) -> str:
    h = hashlib.sha256()
    for part in get_stage(stage).code:
        base = _ROOT / part
        for path in sorted([base] if base.is_file() else base.rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def stage_config(stage: str, cfg: PipelineConfig) -> dict[str, Any]:
    """The config a stage's output depends on (flows/stage.py says which part, per stage)."""
    return get_stage(stage).config_of(cfg)


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
    for stage in PIPELINE:
        keys[stage.name] = StageKey(
            stage.name, stage.config_of(cfg), code_version(stage.name), upstream, stage.inputs(cfg)
        )
        upstream = keys[stage.name].key
    return keys


def recorded(run: RunDir) -> dict[str, dict[str, Any]]:
    return read_marker(stages_file(run)) or {}


def mark(run: RunDir, key: StageKey, status: str) -> None:
    """Record that a stage started ('running') or finished ('finished') with this key."""
    records = recorded(run)
    records[key.stage] = key.record(status)
    write_json(stages_file(run), records)


def is_current(run: RunDir, key: StageKey, records: dict[str, dict[str, Any]] | None = None) -> bool:
    rec = (recorded(run) if records is None else records).get(key.stage)
    return bool(rec and rec["status"] == "finished" and rec["key"] == key.key and done_marker(run, key.stage).exists())


def _what_changed(rec: dict[str, Any], key: StageKey, records: dict[str, dict[str, Any]]) -> list[str]:
    why = [f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed_keys(rec["config"], key.config).items()]
    if rec.get("code") != key.code:
        why.append(f"the {key.stage} code changed (version {rec.get('code')} -> {key.code})")
    if rec.get("upstream") != key.upstream:
        names = stage_names()
        before = names[names.index(key.stage) - 1]
        prev = records.get(before, {})
        why.append(
            f"its input, the {before} stage, changed"
            + ("" if prev.get("key") == key.upstream else " (its config, code or input files)")
        )
    return why or ["its recorded key differs"]


def plan(run: RunDir, cfg: PipelineConfig, wanted: tuple[str, ...] | None = None) -> dict[str, str]:
    """For each wanted stage: 'skip' (finished with the same key; only when the whole pipeline
    runs: a stage command asked for is run) or the reason it runs. Raises StageChangeRefused,
    before anything runs, when that would redo a finished or started training or its data.
    Once training has started, the stages before it that only newer code would make
    differently are kept ('skip (kept: ...)'): see carried_over."""
    wanted = stage_names() if wanted is None else wanted
    keys, on_disk = expected_keys(cfg), recorded(run)
    trained = run.train_summary.exists() or any(run.checkpoints.glob("step*"))
    records, kept = carried_over(run, cfg, keys, on_disk) if trained else (on_disk, {})
    actions: dict[str, str] = {}
    for stage in wanted:
        if stage in kept and len(wanted) > 1:
            actions[stage] = f"skip (kept: {kept[stage]})"
            continue
        # A stage command asked for by name is judged on its own record: redoing it is refused.
        recs = on_disk if stage in kept else records
        key, rec = keys[stage], recs.get(stage)
        if rec is None:
            actions[stage] = "not run yet" if not done_marker(run, stage).exists() else "no stage key recorded"
        elif rec["key"] != key.key:
            actions[stage] = "changed: " + "; ".join(_what_changed(rec, key, recs))
            # The trained model is made by training and the stages before it: those are refused.
            if trained and stage_names().index(stage) <= stage_names().index("train"):
                _refuse(run, stage, rec, key, recs)
        elif is_current(run, key, recs):
            actions[stage] = "skip" if len(wanted) > 1 else "unchanged; run as asked"
        else:
            actions[stage] = "unfinished" if rec["status"] != "finished" else "its output is missing"
    return actions


def carried_over(
    run: RunDir, cfg: PipelineConfig, keys: dict[str, StageKey], records: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The records as this code sees them, for a run whose training has started, and the
    stages kept with why.

    A stage before training whose record differs from this code's key only by its code
    version (same config, bar keys this code added at their defaults; same inputs; same
    upstream) made the data training started on: redoing it would change that data under the
    model, and refusing would leave the run unable to resume after an upgrade. It is kept: its
    record takes this code's key, and the records after it are re-chained to it, so a
    training interrupted under earlier code resumes under this one (its own checkpoint checks
    then decide, tasks/training/resumable_changes.py). Nothing is written here."""
    out = {name: dict(rec) for name, rec in records.items()}
    new_key: dict[str, str] = {}  # a kept or re-chained stage's recorded key -> this code's
    kept: dict[str, str] = {}
    names = stage_names()
    for name in names:
        rec, key = out.get(name), keys[name]
        if rec is None:
            continue
        was_upstream = rec.get("upstream")
        rec["upstream"] = new_key.get(was_upstream, was_upstream) if was_upstream else was_upstream
        consistent = StageKey(name, rec["config"], rec.get("code", ""), was_upstream, key.inputs).key == rec["key"]
        same_config = _only_new_defaults(rec["config"], key.config, get_stage(name), cfg)
        if not (consistent and same_config and rec["upstream"] == key.upstream) or rec["key"] == key.key:
            continue
        if rec.get("code") == key.code:
            new_key[rec["key"]] = key.key  # unchanged itself: only what it was made from was kept
        elif (
            names.index(name) < names.index("train") and rec["status"] == "finished" and done_marker(run, name).exists()
        ):
            new_key[rec["key"]] = key.key
            kept[name] = f"made by an earlier version of its code ({rec.get('code')}), and training started on it"
        else:
            continue
        rec.update(key=key.key, code=key.code, config=key.config)
    return out, kept


def _only_new_defaults(saved: dict[str, Any], now: dict[str, Any], stage: Stage, cfg: PipelineConfig) -> bool:
    """Whether `now` differs from `saved` only by keys `saved` lacks that hold their defaults
    (a setting added to the config since the stage ran, left as it was)."""
    changes = changed_keys(saved, now)
    if not changes:
        return True
    try:
        defaults = type(getattr(cfg, stage.section))().model_dump(mode="json")
    except ValueError:  # a section without defaults for every field
        return False
    default = changed_keys({}, defaults)
    present = changed_keys({}, saved)
    return all(k not in present and k in default and default[k][1] == b for k, (_, b) in changes.items())


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


class StageFailed(RuntimeError):
    """Names the stage that failed, so the flow run's state message says where and why."""


def run_stage(
    run: RunDir, key: StageKey, call: Callable[[], Any], finished: Callable[[Any], bool] = lambda result: True
) -> Any:
    """Record the stage's key as started, run it, and record it as finished if
    `finished(result)` holds: the one way a stage runs, inside the pipeline flow (`call` runs
    its subflow) or as `crucible <stage>` (`call` runs its flow run and returns its state)."""
    mark(run, key, "running")
    try:
        result = call()
    except Exception as exc:
        if (full := disk_full(exc)) is not None:
            raise StageFailed(
                f"stage {key.stage} failed: no space left on the device holding {run.root} ({full}); nothing "
                f"half-written was published: free space, then `crucible resume {run.root}` continues it"
            ) from exc
        raise StageFailed(f"stage {key.stage} failed: {type(exc).__name__}: {exc}") from exc
    if finished(result):
        mark(run, key, "finished")
    return result

"""What a resume may change: the checkpoint's resolved config against the one given now.

A resume continues the run the checkpoint describes. A changed key that would change what
the trained steps mean (the learning rate, the schedule's length, the model) is refused,
listing the keys; `config.RESUMABLE_CHANGES` lists the ones that may change, and why.
"""

from __future__ import annotations

from typing import Any

from infra.core.storage import RunDir, read_json, sha256_file
from infra.core.task_markers import changed_keys
from models.config import ModelConfig
from tasks.training import checkpoint_store as store
from tasks.training.batch import batch_problems
from tasks.training.checks import TrainingConfigError
from tasks.training.config import RESUMABLE_CHANGES, TrainingConfig
from tasks.training.schedule import decay_start


def resume_problems(
    manifest: dict[str, Any],
    cfg: TrainingConfig,
    model_cfg: ModelConfig,
    world: int,
    shards_sha: str,
    precision: str | None = None,
) -> list[str]:
    """Why the checkpoint described by `manifest` cannot be resumed with `cfg` on `world`
    ranks over the token shards whose manifest hashes to `shards_sha`, in the resolved
    `precision` (None: not known yet). Empty: it can."""
    problems = _layout_and_data_problems(manifest, cfg, world, shards_sha, precision)
    problems += _config_problems(manifest, cfg, model_cfg)
    world = max(1, world // (cfg.parallel.pipeline * cfg.parallel.tensor))  # data-parallel replicas
    problems += batch_problems(cfg, world, int(manifest["global_batch"]))
    if problems:
        problems.append(
            f"restore the checkpoint's settings (in {manifest.get('config_file', 'its manifest')}), "
            f"or start a new --run-id"
        )
    return problems


def _layout_and_data_problems(
    manifest: dict[str, Any], cfg: TrainingConfig, world: int, shards_sha: str, precision: str | None
) -> list[str]:
    """The rank layout, precision and data position the checkpoint needs."""
    problems = []
    p, t = cfg.parallel.pipeline, cfg.parallel.tensor
    if (
        p * t > 1 or manifest.get("parallel", {}).get("pipeline", 1) * manifest.get("parallel", {}).get("tensor", 1) > 1
    ) and int(manifest["world_size"]) != world:
        problems.append(
            f"the checkpoint was written by {manifest['world_size']} ranks in pipeline/tensor-parallel "
            f"stages and shards, which are not converted to another layout; resume on "
            f"training.num_workers={manifest['world_size']}"
        )
    if manifest["training"].get("optimizer") == "muon" and int(manifest["world_size"]) != world:
        problems.append(
            f"the checkpoint was written by {manifest['world_size']} ranks with Muon, whose momentum "
            f"DeepSpeed's universal checkpoint does not convert to another number of ranks; resume on "
            f"training.num_workers={manifest['world_size']}"
        )
    world = max(1, world // (p * t))  # from here on: data-parallel replicas
    if precision is not None and manifest.get("precision", precision) != precision:
        problems.append(
            f"the checkpoint was trained in {manifest['precision']} and this resume would "
            f"run in {precision} (precision 'auto' on other hardware?); set "
            f"training.precision={manifest['precision']}"
        )
    unit = cfg.micro_batch_size * world
    data = manifest["data"]
    unaligned = [n for n in [data["samples"], *(b for r in data.get("skips", []) for b in r)] if n % unit]
    if unaligned:
        problems.append(
            f"the data position {data['samples']} (or a skipped stretch's bound) is not a whole "
            f"number of micro-steps of {world} rank(s) x {cfg.micro_batch_size}; resume on the "
            f"checkpoint's {manifest['world_size']} rank(s), or with a micro-batch that divides "
            f"{unaligned[0]}"
        )
    if manifest["data"].get("manifest_sha256") != shards_sha:
        problems.append(
            "the token shards' manifest changed since the checkpoint was written "
            "(re-tokenized, or another mixture), so its data position means other "
            "samples now; restore the tokenization settings"
        )
    return problems


def _config_problems(manifest: dict[str, Any], cfg: TrainingConfig, model_cfg: ModelConfig) -> list[str]:
    """Model and training settings that differ from the checkpoint's, beyond what a resume allows."""
    problems = []
    step = int(manifest["step"])
    model_changes = changed_keys(manifest["model"], model_cfg.model_dump(mode="json"))
    if model_changes:
        problems.append(
            "the model differs from the checkpoint's: "
            + ", ".join(f"model.{k} {a!r} -> {b!r}" for k, (a, b) in model_changes.items())
        )
    saved = TrainingConfig(**manifest["training"])
    changes = changed_keys(saved.model_dump(mode="json"), cfg.model_dump(mode="json"))
    top = {k.split(".")[0] for k in changes}
    refused = sorted(k for k in changes if k.split(".")[0] not in RESUMABLE_CHANGES)
    if refused:
        problems.append(
            "these training keys differ from the checkpoint's and would change the run "
            "it continues: " + ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
        )
    if "max_steps" in top:
        if cfg.schedule == "constant" or (
            cfg.schedule == "wsd"
            and step
            <= min(
                decay_start(saved.max_steps, saved.warmup_steps, saved.decay_fraction),
                decay_start(cfg.max_steps, cfg.warmup_steps, cfg.decay_fraction),
            )
        ):
            pass
        else:
            problems.append(
                f"training.max_steps {saved.max_steps} -> {cfg.max_steps} would reshape the "
                f"{cfg.schedule} schedule of the steps already trained (step {step}); only "
                f"'constant', or 'wsd' before its decay begins, can be extended"
            )
    if cfg.global_batch_size and cfg.global_batch_size != int(manifest["global_batch"]):
        problems.append(
            f"training.global_batch_size {cfg.global_batch_size} differs from the checkpoint's global "
            f"batch of {manifest['global_batch']}, which a resume keeps"
        )
    return problems


def check_resumable(run: RunDir, cfg: TrainingConfig, model_cfg: ModelConfig, precision: str | None) -> None:
    """Refuse a resume the newest sealed checkpoint's config does not allow, reading only
    its manifest (the ranks verify the files at load and fall back past a damaged one).
    Runs in the CLI before anything starts, and again in the driver once the device is known."""
    published = store.published_steps(run.checkpoints)
    if published and not any((folder / store.MANIFEST).is_file() for _, folder in published):
        raise TrainingConfigError(
            f"the checkpoints in {run.checkpoints} have no manifest (unfinished saves, or written by a "
            f"Crucible before checkpoints were sealed) and cannot be trusted; move them away to train "
            f"this run from step 0, or start a new --run-id"
        )
    from tasks.training.checkpoint_key import signature_problem

    manifests = []
    for _, folder in published:
        try:
            manifests.append((folder, read_json(folder / store.MANIFEST)))
        except (OSError, ValueError):  # unsealed or damaged: the ranks will fall back past it
            continue
    untrusted = [why for folder, m in manifests if isinstance(m, dict) and (why := signature_problem(m, folder))]
    if untrusted:  # planted or copied in: refused before any of it is unpickled
        raise TrainingConfigError("\n".join(untrusted))
    for folder, manifest in manifests:
        if manifest:
            problems = resume_problems(manifest, cfg, model_cfg, cfg.num_workers, sha256_file(run.manifest), precision)
            if problems:
                raise TrainingConfigError(f"cannot resume from {folder}:\n  - " + "\n  - ".join(problems))
            return

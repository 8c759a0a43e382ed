"""The driver's checks, before any worker starts: config rules and a resume's config."""

import pytest

from infra.core.storage import RunDir, sha256_file, write_json
from models.presets import get_preset
from tasks.training.checkpoint_key import sign
from tasks.training.checks import TrainingConfigError
from tasks.training.config import TrainingConfig
from tasks.training.trainer import plan_job

MODEL = get_preset("debug").model


def _published(run: RunDir, step: int, cfg: TrainingConfig, world: int, global_batch: int) -> None:
    folder = run.checkpoints / f"step{step}"
    folder.mkdir(parents=True)
    write_json(  # as rank 0 writes it: signed with this installation's (the session's) key
        folder / "manifest.json",
        sign(
            {
                "step": step,
                "world_size": world,
                "training": cfg.model_dump(mode="json"),
                "model": MODEL.model_dump(mode="json"),
                "global_batch": global_batch,
                "data": {"samples": step * global_batch, "manifest_sha256": sha256_file(run.manifest)},
                "files": {},
            }
        ),
    )


def test_a_resume_that_changes_the_run_is_refused_listing_the_keys(tmp_path):
    run = RunDir(tmp_path)
    run.manifest.parent.mkdir(parents=True)
    run.manifest.write_text("{}")
    cfg = TrainingConfig(num_workers=2, micro_batch_size=4, max_steps=20, warmup_steps=2)
    assert plan_job(run, MODEL, cfg, 0.0).device == "cpu"  # nothing to resume yet
    _published(run, 6, cfg, world=2, global_batch=8)
    plan_job(run, MODEL, cfg, 0.0)
    # Allowed: more ranks (the accumulation absorbs it), and save/eval cadence.
    plan_job(run, MODEL, cfg.model_copy(update={"num_workers": 1, "checkpoint_every": 3, "eval_every": 2}), 0.0)
    with pytest.raises(TrainingConfigError, match=r"training keys differ.*lr 0.001 -> 0.002.*weight_decay"):
        plan_job(run, MODEL, cfg.model_copy(update={"lr": 2e-3, "weight_decay": 0.0}), 0.0)
    with pytest.raises(TrainingConfigError, match="max_steps 20 -> 40 would reshape the cosine schedule"):
        plan_job(run, MODEL, cfg.model_copy(update={"max_steps": 40}), 0.0)
    with pytest.raises(TrainingConfigError, match=r"global batch of 8 sequences is not divisible by 3 rank"):
        plan_job(run, MODEL, cfg.model_copy(update={"num_workers": 3}), 0.0)
    with pytest.raises(TrainingConfigError, match=r"the model differs.*model\.n_layer 2 -> 3"):
        plan_job(run, MODEL.model_copy(update={"n_layer": 3}), cfg, 0.0)
    run.manifest.write_text('{"re-tokenized": true}')
    with pytest.raises(TrainingConfigError, match=r"(?s)token shards' manifest changed.*start a new --run-id"):
        plan_job(run, MODEL, cfg, 0.0)


def test_wsd_may_be_extended_before_its_decay(tmp_path):
    run = RunDir(tmp_path)
    run.manifest.parent.mkdir(parents=True)
    run.manifest.write_text("{}")
    cfg = TrainingConfig(num_workers=1, micro_batch_size=4, max_steps=20, warmup_steps=2, schedule="wsd")
    _published(run, 6, cfg, world=1, global_batch=4)
    plan_job(run, MODEL, cfg.model_copy(update={"max_steps": 100}), 0.0)  # decay starts at step 16
    run2 = RunDir(tmp_path / "late")
    run2.manifest.parent.mkdir(parents=True)
    run2.manifest.write_text("{}")
    _published(run2, 18, cfg, world=1, global_batch=4)
    with pytest.raises(TrainingConfigError, match="before its decay begins"):
        plan_job(run2, MODEL, cfg.model_copy(update={"max_steps": 100}), 0.0)


def test_no_shards_is_an_error_naming_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `crucible tokenize`"):
        plan_job(RunDir(tmp_path), MODEL, TrainingConfig(), 0.0)


def test_checkpoints_without_a_manifest_are_not_silently_replaced(tmp_path):
    run = RunDir(tmp_path)
    run.manifest.parent.mkdir(parents=True)
    run.manifest.write_text("{}")
    (run.checkpoints / "step100").mkdir(parents=True)  # e.g. written before checkpoints were sealed
    with pytest.raises(TrainingConfigError, match=r"have no manifest.*move them away.*or start a new --run-id"):
        plan_job(run, MODEL, TrainingConfig(), 0.0)


def test_a_run_continuing_on_fewer_ranks_keeps_its_global_batch(tmp_path):
    from tasks.training.elastic import shrunk_config

    run = RunDir(tmp_path)
    run.manifest.parent.mkdir(parents=True)
    run.manifest.write_text("{}")
    cfg = TrainingConfig(num_workers=2, micro_batch_size=4, max_steps=20, warmup_steps=2)
    _published(run, 6, cfg, world=2, global_batch=8)
    smaller = shrunk_config(cfg, 1)
    assert (smaller.num_workers, smaller.global_batch_size, smaller.min_workers) == (1, 8, 1)
    plan_job(run, MODEL, smaller, 0.0)  # the checkpoint's batch, on one rank: accepted
    with pytest.raises(
        TrainingConfigError, match="global_batch_size 16 differs from the checkpoint's global batch of 8"
    ):
        plan_job(run, MODEL, cfg.model_copy(update={"global_batch_size": 16}), 0.0)
    with pytest.raises(ValueError, match=r"min_workers \(3\) must not exceed num_workers \(2\)"):
        TrainingConfig(num_workers=2, min_workers=3, max_steps=20, warmup_steps=2)

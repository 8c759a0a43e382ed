"""What a resume may change (tasks/training/resumable_changes.py): Muon's checkpoints stay on
their number of ranks, and the optimizer's settings are not resumable changes."""

from __future__ import annotations

from models.presets import get_preset
from tasks.training.config import TrainingConfig
from tasks.training.resumable_changes import resume_problems

MODEL = get_preset("debug").model


def _manifest(cfg: TrainingConfig, world: int) -> dict:
    return {
        "world_size": world,
        "step": 4,
        "global_batch": 8,
        "precision": "fp32",
        "data": {"samples": 32, "manifest_sha256": "x"},
        "model": MODEL.model_dump(mode="json"),
        "training": cfg.model_dump(mode="json"),
    }


def test_a_muon_checkpoint_resumes_only_on_its_own_number_of_ranks():
    cfg = TrainingConfig(optimizer="muon", num_workers=2, min_workers=2, micro_batch_size=4, global_batch_size=8)
    assert resume_problems(_manifest(cfg, 2), cfg, MODEL, 2, "x", "fp32") == []
    fewer = cfg.model_copy(update={"num_workers": 1, "min_workers": 1})
    problems = resume_problems(_manifest(cfg, 2), fewer, MODEL, 1, "x", "fp32")
    assert any("Muon, whose momentum" in p and "training.num_workers=2" in p for p in problems)
    adamw = TrainingConfig(num_workers=2, micro_batch_size=4, global_batch_size=8)
    fewer = adamw.model_copy(update={"num_workers": 1})
    assert resume_problems(_manifest(adamw, 2), fewer, MODEL, 1, "x", "fp32") == []  # ZeRO shards convert


def test_the_optimizer_and_decay_settings_are_not_resumable_changes():
    cfg = TrainingConfig(num_workers=2, micro_batch_size=4, global_batch_size=8)
    for change in ({"optimizer": "muon", "min_workers": 2}, {"muon": {"lr": 0.05}}, {"decay_embeddings": True}):
        changed = TrainingConfig(**{**cfg.model_dump(), **change})
        problems = resume_problems(_manifest(cfg, 2), changed, MODEL, 2, "x", "fp32")
        assert any(f"{next(iter(change))}" in p and "would change the run" in p for p in problems), change

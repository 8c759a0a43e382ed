from infra.deepspeed_config import deepspeed_config, resolve_precision
from tasks.training.config import TrainingConfig


def test_derived_from_training_config():
    cfg = TrainingConfig(micro_batch_size=4, grad_accum_steps=3, lr=2e-3, zero_stage=2, precision="bf16")
    ds = deepspeed_config(cfg, world_size=2, precision=resolve_precision(cfg.precision))
    assert ds["train_batch_size"] == 4 * 3 * 2
    assert ds["gradient_accumulation_steps"] == 3
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    opt = ds["optimizer"]
    assert opt["type"] == "AdamW" and opt["params"]["lr"] == 2e-3
    assert opt["params"]["weight_decay"] == 0.1 and ds["gradient_clipping"] == 1.0
    assert "scheduler" not in ds  # the schedule lives in tasks/training/schedule.py


def test_auto_precision_resolves_to_a_supported_type():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto") in {"bf16", "fp16", "fp32"}

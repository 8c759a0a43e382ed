from tasks.training.config import TrainingConfig
from tasks.training.deepspeed_config import deepspeed_config, resolve_precision


def test_derived_from_training_config():
    cfg = TrainingConfig(
        micro_batch_size=4, grad_accum_steps=3, lr=2e-3, zero_stage=2, precision="bf16", betas=(0.8, 0.9), eps=1e-6
    )
    ds = deepspeed_config(cfg, world_size=2, precision="bf16", device="cpu", grad_accum=3)
    assert ds["train_batch_size"] == 4 * 3 * 2
    assert ds["gradient_accumulation_steps"] == 3
    assert ds["zero_optimization"] == {
        "stage": 2,
        "reduce_bucket_size": 50_000_000,
        "allgather_bucket_size": 50_000_000,
    }
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    opt = ds["optimizer"]
    assert opt["type"] == "AdamW" and opt["params"]["lr"] == 2e-3
    assert opt["params"]["betas"] == [0.8, 0.9] and opt["params"]["eps"] == 1e-6
    assert opt["params"]["weight_decay"] == 0.1 and ds["gradient_clipping"] == 1.0
    assert opt["params"]["torch_adam"] and opt["params"]["fused"]  # CPU: torch's fused AdamW, no JIT build
    assert "scheduler" not in ds  # the schedule lives in tasks/training/schedule.py
    assert not ds["checkpoint"]["load_universal"]


def test_gpu_uses_fused_adam_and_fp16_scales_dynamically():
    cfg = TrainingConfig(
        zero_stage=3, offload_optimizer=True, offload_params=True, precision="fp16", initial_loss_scale_power=12
    )
    ds = deepspeed_config(cfg, world_size=8, precision="fp16", device="cuda", grad_accum=1, load_universal=True)
    assert not ds["optimizer"]["params"]["torch_adam"] and "fused" not in ds["optimizer"]["params"]
    assert ds["fp16"]["enabled"] and ds["fp16"]["loss_scale"] == 0 and ds["fp16"]["initial_scale_power"] == 12
    z = ds["zero_optimization"]
    assert z["stage"] == 3 and z["offload_optimizer"]["device"] == "cpu" and z["offload_param"]["device"] == "cpu"
    assert ds["checkpoint"]["load_universal"]


def test_auto_precision_is_decided_for_the_workers_device():
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("auto", "cpu") in {"bf16", "fp32"}
    # A CPU-only driver asked about GPU workers answers for the GPUs, not for itself.
    assert resolve_precision("auto", "cuda") in {"bf16", "fp16"}


def test_muon_is_deepspeeds_muon_with_adamw_beside_it_and_no_clipping():
    cfg = TrainingConfig(
        optimizer="muon", lr=2e-3, betas=(0.8, 0.9), muon={"lr": 0.05, "momentum": 0.9, "ns_method": "standard"}
    )
    ds = deepspeed_config(cfg, world_size=2, precision="bf16", device="cpu", grad_accum=1)
    opt = ds["optimizer"]
    assert opt["type"] == "Muon"
    assert opt["params"]["lr"] == 2e-3 and opt["params"]["betas"] == [0.8, 0.9]  # the AdamW half
    assert opt["params"]["muon_lr"] == 0.05 and opt["params"]["momentum"] == 0.9
    assert opt["params"]["ns_method"] == "standard"
    assert ds["gradient_clipping"] == 0.0  # ZeRO would clip the orthogonalised updates
    assert "reduce_scatter" not in ds["zero_optimization"]
    zero3 = deepspeed_config(cfg.model_copy(update={"zero_stage": 3}), 2, "bf16", "cpu", 1)
    assert zero3["zero_optimization"]["reduce_scatter"] is False  # ZeRO-3 refuses Muon with it
    adamw = deepspeed_config(TrainingConfig(zero_stage=3), 2, "bf16", "cpu", 1)
    assert "reduce_scatter" not in adamw["zero_optimization"] and adamw["gradient_clipping"] == 1.0

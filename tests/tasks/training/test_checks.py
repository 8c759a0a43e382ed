"""Bad combinations are refused before any worker starts, each naming the fix."""

import pytest

from models.presets import get_preset
from tasks.training.batch import batch_plan
from tasks.training.checks import TrainingConfigError, check_training, resolve_device
from tasks.training.config import TrainingConfig

MODEL = get_preset("debug").model


@pytest.mark.parametrize(
    "overrides,device,precision,match",
    [
        (
            {"num_workers": 3, "global_batch_size": 16, "micro_batch_size": 4},
            "cpu",
            "fp32",
            r"global batch of 16 sequences is not divisible by 3 rank\(s\) x micro-batch 4; "
            r"set training.num_workers to one of \[1, 2, 4\]",
        ),
        ({}, "cpu", "fp16", "fp16 needs a GPU.*set training.precision to bf16 or fp32"),
        (
            {"zero_stage": 0, "offload_optimizer": True},
            "cuda",
            "bf16",
            "offload_optimizer needs ZeRO; set training.zero_stage",
        ),
        ({"zero_stage": 2, "offload_params": True}, "cuda", "bf16", "offload_params needs ZeRO-3.*zero_stage=3"),
        (
            {"zero_stage": 2, "parallel": {"pipeline": 2}},
            "cuda",
            "bf16",
            "ZeRO stage 2 partitions gradients, which DeepSpeed's pipeline engine .* cannot use; "
            "set training.zero_stage=1",
        ),
        ({"zero_stage": 0}, "cpu", "bf16", "bf16 without ZeRO.*set training.zero_stage=1"),
        ({"zero_stage": 1, "offload_optimizer": True}, "cpu", "bf16", "the ranks already run on cpu"),
        (
            {"batch_ramp": {"start_batch": 64, "tokens": 1000}, "micro_batch_size": 4},
            "cpu",
            "fp32",
            r"batch_ramp.start_batch \(64\) must be below the global batch \(8\); lower it",
        ),
    ],
)
def test_refused_with_the_fix(overrides, device, precision, match):
    cfg = TrainingConfig(**overrides)
    with pytest.raises(TrainingConfigError, match=match):
        check_training(cfg, MODEL, device, precision, cluster_gpus=16)


def test_every_problem_is_listed_at_once():
    cfg = TrainingConfig(zero_stage=0, offload_optimizer=True, offload_params=True)
    with pytest.raises(TrainingConfigError) as err:
        check_training(cfg, MODEL, "cuda", "fp16", cluster_gpus=1)
    msg = str(err.value)
    assert "offload_optimizer needs ZeRO" in msg and "offload_params needs ZeRO-3" in msg
    assert "the cluster has 1 GPU(s) for 2 worker(s)" in msg


def test_without_a_device_only_device_independent_checks_run():
    check_training(TrainingConfig(precision="fp16"), MODEL)  # fp16 may be fine on the workers' GPUs
    with pytest.raises(TrainingConfigError, match="offload_optimizer needs ZeRO"):
        check_training(TrainingConfig(zero_stage=0, offload_optimizer=True), MODEL)
    check_training(TrainingConfig(), MODEL, "cpu", "fp32")  # the defaults run


def test_device_comes_from_the_cluster_not_the_driver():
    cfg = TrainingConfig(num_workers=4, gpus_per_worker=1)
    assert resolve_device(cfg, cluster_gpus=4) == "cuda"  # whatever this (CPU-only) driver has
    assert resolve_device(cfg, cluster_gpus=2) == "cpu"
    assert resolve_device(cfg.model_copy(update={"device": "cpu"}), cluster_gpus=8) == "cpu"


def test_batch_ramp_grows_in_whole_micro_steps_and_depends_only_on_the_data_position():
    cfg = TrainingConfig(micro_batch_size=2, global_batch_size=32, batch_ramp={"start_batch": 4, "tokens": 64 * 100})
    plan = batch_plan(cfg, world=2, seq_len=64)  # the ramp lasts 100 sequences
    sizes, samples = [], 0
    while samples < 200:
        sizes.append(plan.step_batch(samples))
        samples += sizes[-1]
    assert sizes[0] == 4 and sizes[-1] == 32 and all(s % 4 == 0 for s in sizes)
    assert sizes == sorted(sizes) and len(set(sizes)) > 3
    assert plan.accumulation(0) == 1 and plan.accumulation(10**6) == 8
    # A world-size change keeps the global batch: the accumulation absorbs it.
    assert batch_plan(cfg, world=4, seq_len=64, global_batch_size=32).accumulation(10**6) == 4


MUON = {"optimizer": "muon", "min_workers": 2}


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"zero_stage": 0}, r"optimizer=muon with zero_stage=0.*set training.zero_stage to 1, 2 or 3"),
        (
            {"num_workers": 4, "min_workers": 4, "parallel": {"pipeline": 2}},
            r"muon with pipeline or tensor parallelism.*set training.parallel.pipeline=1 and tensor=1",
        ),
        ({"num_workers": 4, "min_workers": 4, "parallel": {"tensor": 2}}, r"shard would be orthogonalised alone"),
        ({"min_workers": 1}, r"Muon's momentum; set training.min_workers=2, or training.optimizer=adamw"),
    ],
)
def test_muon_refuses_what_deepspeed_cannot_run_before_any_worker_starts(overrides, match):
    cfg = TrainingConfig(**{**MUON, **overrides})
    with pytest.raises(TrainingConfigError, match=match):
        check_training(cfg, MODEL)  # the driver's first check, before Ray or a rank starts


@pytest.mark.parametrize("zero", [1, 2, 3])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_muon_runs_on_every_zero_stage(zero, precision):
    check_training(TrainingConfig(**MUON, zero_stage=zero), MODEL, "cpu", precision)
    check_training(TrainingConfig(**MUON, zero_stage=zero), MODEL, "cuda", "fp16", cluster_gpus=2)

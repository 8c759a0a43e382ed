"""Pipeline and tensor parallelism on real DeepSpeed pipeline engines over gloo (CPU ranks,
no Ray): every layout against one rank, exact resume under P=2 x T=2, and the gathered
single-device model against the shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from infra.core.storage import RunDir, read_json
from models.presets import get_preset
from tasks.training.checkpoint import FINAL, load_model
from tasks.training.launch import run_local
from tasks.training.loop import Faults, TrainJob
from tasks.training.metrics import read_metrics
from tasks.training.parallel.steps import PROBE
from tests.conftest import build_token_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # each case starts DeepSpeed engines in fresh processes

STEPS = 10
# Llama-shaped: a fused QKV with grouped-query heads, a gated MLP, tied embeddings.
LLAMA = {
    "n_layer": 4,
    "n_head": 4,
    "n_kv_head": 2,
    "d_model": 48,
    "position": "rope",
    "norm": "rmsnorm",
    "activation": "swiglu",
    "bias": False,
    "tie_embeddings": True,
}
# GPT-2-shaped: learned positions (a table the last stage's tied copy must not overwrite) and biases.
GPT2 = {"n_layer": 4, "n_head": 4, "d_model": 48}
# Untied head (the last stage's own weight), biases split by the tensor ranks, ALiBi's per-head
# tables sliced with the heads; trained with document masks carried from stage to stage.
UNTIED = {**GPT2, "tie_embeddings": False, "position": "alibi"}
SHAPES = {"llama": (LLAMA, {}), "gpt2": (GPT2, {}), "untied": (UNTIED, {"document_mask": True})}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source")
    build_token_run(root, {"alpha": 300, "beta": 200})
    return root


def _new_run(source: Path, root: Path) -> Path:
    root.mkdir(parents=True)
    for part in ("shards", "tokenizer"):
        shutil.copytree(source / part, root / part)
    return root


def _job(root: Path, world: int, pipeline: int, tensor: int, model: dict, **training) -> TrainJob:
    cfg = {
        "num_workers": world,
        "micro_batch_size": 2,
        "global_batch_size": 8,
        "max_steps": STEPS,
        "warmup_steps": 2,
        "lr": 5e-3,
        "checkpoint_every": 4,
        "eval_every": 5,
        "eval_batches": 2,
        "zero_stage": 1,
        "precision": "fp32",
        "peak_flops": 1e12,
        "parallel": {"pipeline": pipeline, "tensor": tensor},
        **training,
    }
    full = get_preset("debug").model.model_copy(update=model).model_dump(mode="json")
    return TrainJob(str(root), cfg, full, "cpu", "fp32")


def _train(job: TrainJob, world: int, faults: Faults | None = None, expect_ok: bool = True) -> list[int]:
    codes = run_local(job, world, faults, timeout=600)
    if expect_ok:
        logs = Path(job.run_dir) / "logs"
        assert codes == [0] * world, "\n".join((logs / f"rank{r}.log").read_text()[-3000:] for r in range(world))
    return codes


def _steps(root: Path) -> list[dict]:
    return read_metrics(RunDir(root).metrics)[0]


@pytest.fixture(scope="module")
def one_rank(source, tmp_path_factory):
    """1-rank runs of every model shape: the references every layout must equal."""
    out = {}
    for name, (model, training) in SHAPES.items():
        root = _new_run(source, tmp_path_factory.mktemp("one") / name)
        _train(_job(root, 1, 1, 1, model, **training), 1)
        out[name] = root
    return out


@pytest.fixture(scope="module")
def p2t2(source, tmp_path_factory):
    root = _new_run(source, tmp_path_factory.mktemp("p2t2") / "run")
    _train(_job(root, 4, 2, 2, LLAMA, keep_last=3), 4)  # keeps step 4 for the resume case
    return root


def _assert_same_run(root: Path, ref: Path) -> None:
    got, want = _steps(root), _steps(ref)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    losses, ref_losses = np.array([r["loss"] for r in got]), np.array([r["loss"] for r in want])
    assert np.allclose(losses, ref_losses, rtol=1e-4, atol=0), (losses, ref_losses)
    assert ref_losses[-1] < ref_losses[0] - 0.5  # it trained: equality is not of two flat lines
    # The same global batch and tokens; MFU over every rank of the layout.
    assert [r["tokens"] for r in got] == [r["tokens"] for r in want]
    world = read_json(RunDir(root).train_summary)["world_size"]
    for a, b in zip(got, want):
        assert a["mfu"] == pytest.approx(b["mfu"] * a["tokens_per_s"] / b["tokens_per_s"] / world, rel=1e-6)
    if read_json(RunDir(root).train_summary)["parallel"]["data"] == 1:
        # Validation rows are split over the replicas, as over a plain run's ranks: with one
        # replica they are the 1-rank run's rows.
        val = [r["val_loss"] for r in got if "val_loss" in r]
        ref_val = [r["val_loss"] for r in want if "val_loss" in r]
        assert len(val) == 2 and np.allclose(val, ref_val, rtol=1e-4, atol=0)


@pytest.mark.parametrize(
    "world,pipeline,tensor,shape,recompute",
    [
        (2, 1, 2, "llama", False),  # tensor parallelism alone
        (2, 1, 2, "llama", True),  # ... recomputing each block in the backward pass
        (2, 2, 1, "llama", False),  # pipeline alone
        (4, 2, 1, "gpt2", False),  # pipeline x 2 data-parallel replicas
        (4, 2, 2, "untied", True),  # pipeline x tensor: untied head, biases, ALiBi, document masks, recompute
    ],
)
def test_layout_trains_as_one_rank(source, one_rank, tmp_path, world, pipeline, tensor, shape, recompute):
    root = _new_run(source, tmp_path / "run")
    model, training = SHAPES[shape]
    _train(_job(root, world, pipeline, tensor, model, activation_checkpointing=recompute, **training), world)
    _assert_same_run(root, one_rank[shape])
    summary = read_json(RunDir(root).train_summary)
    assert summary["parallel"] == {"pipeline": pipeline, "tensor": tensor, "data": world // (pipeline * tensor)}
    # The gathered final model is the 1-rank model, weight for weight.
    a, _ = load_model(RunDir(one_rank[shape]).checkpoints / FINAL)
    b, _ = load_model(RunDir(root).checkpoints / FINAL)
    want, got = a.state_dict(), b.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        # Adam turns a float-order difference in a near-zero gradient into up to lr-sized
        # steps: 1e-4 absolute is 2% of one step at this run's lr of 5e-3.
        assert torch.allclose(got[name], want[name], rtol=1e-3, atol=1e-4), name


def test_pipeline_x_tensor_trains_as_one_rank(p2t2, one_rank):
    _assert_same_run(p2t2, one_rank["llama"])
    ckpt = RunDir(p2t2).checkpoints / f"step{STEPS}"
    manifest = read_json(ckpt / "manifest.json")
    assert manifest["parallel"] == {"pipeline": 2, "tensor": 2, "data": 1}
    # Per stage and shard: each block's layer file exists once per tensor rank.
    assert {f"layer_01-model_0{t}-model_states.pt" for t in (0, 1)} <= set(manifest["files"])


@pytest.mark.parametrize("world", [8])
def test_pipeline_x_tensor_x_data_trains_as_one_rank(source, one_rank, tmp_path, world):
    root = _new_run(source, tmp_path / "run")
    _train(_job(root, world, 2, 2, LLAMA), world)
    _assert_same_run(root, one_rank["llama"])


def test_exact_resume_under_pipeline_x_tensor(source, p2t2, tmp_path):
    """From step 4's per-stage, per-shard checkpoint, as a run killed at step 7 left it."""
    root = _new_run(source, tmp_path / "killed")
    (RunDir(root).checkpoints).mkdir()
    shutil.copytree(RunDir(p2t2).checkpoints / "step4", RunDir(root).checkpoints / "step4")
    (RunDir(root).checkpoints / "latest").write_text("step4")
    lines = RunDir(p2t2).metrics.read_text().splitlines(keepends=True)
    RunDir(root).metrics.write_text("".join(ln for ln in lines if json.loads(ln).get("step", 0) < 7))
    job = _job(root, 4, 2, 2, LLAMA)
    _train(job, 4)
    assert "step4 at step 4" in (RunDir(root).root / "logs" / "rank0.log").read_text()
    assert [r["loss"] for r in _steps(root)] == [r["loss"] for r in _steps(p2t2)]  # bit for bit


def test_export_of_pipeline_x_tensor_equals_the_shards_and_evaluates(p2t2, tmp_path):
    from transformers import AutoModelForCausalLM

    from infra.app.cli import main as crucible
    from tasks.evaluation.config import EvaluationConfig
    from tasks.evaluation.evaluate import validation_perplexity

    run = RunDir(p2t2)
    probe = torch.load(run.checkpoints / FINAL / PROBE, weights_only=True)
    model, _ = load_model(run.checkpoints / FINAL)
    with torch.no_grad():
        single = model(probe["input_ids"])
    assert single.shape == probe["shard_logits"].shape
    assert torch.allclose(single, probe["shard_logits"], rtol=1e-5, atol=1e-5)
    assert read_json(run.train_summary)["export_check"]["relative"] < 1e-5
    dest = tmp_path / "hf"
    assert crucible(["export", str(p2t2), "--out", str(dest)]) == 0
    hf = AutoModelForCausalLM.from_pretrained(dest).eval()
    with torch.no_grad():
        assert torch.allclose(hf(probe["input_ids"]).logits, probe["shard_logits"], rtol=1e-5, atol=1e-5)
    ppl = validation_perplexity(p2t2, EvaluationConfig(perplexity_max_rows=64, batch_size=8))
    final_val = [r["val_loss"] for r in _steps(p2t2) if "val_loss" in r][-1]
    assert 1.0 < ppl["perplexity"] < 2 * np.exp(final_val)


def test_planted_spike_is_rolled_back_under_pipeline_parallelism(tmp_path):
    """The loop's fault injection and roll-back work under every strategy
    (tasks/training/strategy.py), on real pipeline engines as under data parallelism."""
    root = tmp_path / "run"
    build_token_run(root, {"alpha": 300, "beta": 200})
    # Step 6 reads stream positions 40-47 (global batch 8): that batch is corrupt.
    spike = {"min_history": 3, "factor": 3.0, "max_rollbacks": 2}
    _train(
        _job(root, 2, 2, 1, {"n_layer": 2, "n_head": 4, "d_model": 48}, spike=spike), 2, Faults(poison_samples=(40, 48))
    )
    steps, events = read_metrics(RunDir(root).metrics)
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert len(events) == 1 and events[0]["step"] == 6 and events[0]["rolled_back_to"] == 4
    assert events[0]["skipped_samples"] == [40, 48] and "above 3x the mean" in events[0]["reason"]
    assert all(r["loss"] < 2 * steps[0]["loss"] for r in steps)  # the spike never reached the curve
    # Every later step reads past the skipped batch: no step ends at position 48.
    assert [r["samples"] for r in steps] == [8, 16, 24, 32, 40, 56, 64, 72, 80, 88]
    summary = read_json(RunDir(root).train_summary)
    assert summary["rollbacks"] == 1 and summary["skipped_samples"] == [[40, 48]]
    assert summary["parallel"] == {"pipeline": 2, "tensor": 1, "data": 1}

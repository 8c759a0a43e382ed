"""The training loop on real DeepSpeed engines over gloo, 1 and 2 CPU ranks, without Ray:
exact resume after SIGKILL, resume on another world size, fallback from a corrupt newest
checkpoint, spike roll-back, ZeRO-2/3 against one rank, preemption, metrics.

Every rank launch costs seconds, so the cases that resume, damage or convert checkpoints
start from copies of the reference runs' checkpoints (`interrupted`), as a run killed
after that step would have left them; the SIGKILL and SIGTERM cases kill a live run."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from infra.core.storage import RunDir, read_json
from models.presets import get_preset
from tasks.tokenization.reader import read_manifest
from tasks.training.checkpoint import FINAL, load_model
from tasks.training.data import TrainingData
from tasks.training.launch import LocalJob, run_local
from tasks.training.loop import SAVE_POINTS, Faults, TrainJob
from tasks.training.metrics import read_metrics
from tasks.training.schedule import lr_multiplier
from tests.conftest import build_token_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # each case starts DeepSpeed engines in fresh processes

STEPS, EVERY, MICRO = 8, 3, 4  # checkpoints at steps 3, 6 and 8; global batch 8 on 2 ranks


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source")
    build_token_run(root, {"alpha": 300, "beta": 200})
    return root


@pytest.fixture()
def new_run(source, tmp_path):
    def make(name: str) -> Path:
        root = tmp_path / name
        root.mkdir()
        for part in ("shards", "tokenizer"):
            shutil.copytree(source / part, root / part)
        return root

    return make


def _interrupted(ref: Path, root: Path, steps: tuple[int, ...], killed_at: int) -> Path:
    """`root` as a run of `ref`'s settings left it when killed at step `killed_at`: the
    checkpoints of `steps` (the newest in `latest`) and the metrics of the steps before."""
    ckpts = RunDir(root).checkpoints
    ckpts.mkdir()
    for step in steps:
        shutil.copytree(RunDir(ref).checkpoints / f"step{step}", ckpts / f"step{step}")
    (ckpts / "latest").write_text(f"step{max(steps)}")
    lines = RunDir(ref).metrics.read_text().splitlines(keepends=True)
    RunDir(root).metrics.write_text("".join(ln for ln in lines if json.loads(ln).get("step", 0) < killed_at))
    return root


def _job(root: Path, world: int, precision: str = "fp32", **training) -> TrainJob:
    cfg = {
        "num_workers": world,
        "micro_batch_size": MICRO,
        "grad_accum_steps": 2 // world if world < 2 else 1,
        "max_steps": STEPS,
        "warmup_steps": 2,
        "lr": 5e-3,
        "checkpoint_every": EVERY,
        "eval_every": 4,
        "eval_batches": 2,
        "zero_stage": 1,
        "precision": precision,
        "peak_flops": 1e12,
        **training,
    }
    return TrainJob(str(root), cfg, get_preset("debug").model.model_dump(mode="json"), "cpu", precision)


def _train(job: TrainJob, world: int, faults: Faults | None = None, expect_ok: bool = True) -> list[int]:
    codes = run_local(job, world, faults, timeout=600)
    if expect_ok:
        assert codes == [0] * world, _all_tails(job, world)
    return codes


def _all_tails(job: TrainJob, world: int) -> str:
    logs = Path(job.run_dir) / "logs"
    return "\n".join(f"--- rank{r} ---\n" + (logs / f"rank{r}.log").read_text()[-3000:] for r in range(world))


def _tail(job: TrainJob) -> str:
    return (Path(job.run_dir) / "logs" / "rank0.log").read_text()[-4000:]


def _steps(root: Path) -> list[dict]:
    return read_metrics(RunDir(root).metrics)[0]


def _losses(root: Path) -> list[float]:
    return [r["loss"] for r in _steps(root)]


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
    """Uninterrupted 2-rank runs, fp32 and bf16, that the other cases compare against. The
    fp32 run keeps its last three checkpoints (3, 6, 8): the interrupted cases start from them."""
    out = {}
    for precision in ("fp32", "bf16"):
        root = tmp_path_factory.mktemp(f"ref-{precision}")
        for part in ("shards", "tokenizer"):
            shutil.copytree(source / part, root / part)
        _train(_job(root, 2, precision, **({"keep_last": 3} if precision == "fp32" else {})), 2)
        out[precision] = root
    return out


@pytest.fixture(scope="module")
def one_rank(source, tmp_path_factory):
    """An uninterrupted 1-rank run of the same global batch (accumulated over 2 micro-batches)."""
    root = tmp_path_factory.mktemp("one-rank")
    for part in ("shards", "tokenizer"):
        shutil.copytree(source / part, root / part)
    _train(_job(root, 1, zero_stage=1, keep_last=3), 1)
    return root


# bf16 only: fp32 resumes after a SIGKILL at each step of a save (below), bit for bit too.
@pytest.mark.parametrize("precision", ["bf16"])
def test_sigkill_then_resume_gives_the_same_losses_bit_for_bit(reference, new_run, precision):
    root = new_run("killed")
    codes = _train(_job(root, 2, precision), 2, Faults(kill_at_step=5), expect_ok=False)
    assert codes[0] == -signal.SIGKILL
    assert [r["step"] for r in _steps(root)] == [1, 2, 3, 4]
    _train(_job(root, 2, precision), 2)
    assert "resumed from" in _tail(_job(root, 2)) and "step3 at step 3" in _tail(_job(root, 2))
    ref, got = _steps(reference[precision]), _steps(root)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in got] == [r["loss"] for r in ref]  # exactly equal, not approximately
    assert [r["grad_norm"] for r in got] == [r["grad_norm"] for r in ref]
    a, _ = load_model(RunDir(reference[precision]).checkpoints / FINAL)
    b, _ = load_model(RunDir(root).checkpoints / FINAL)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("point", list(SAVE_POINTS))
def test_a_kill_between_the_steps_of_a_save_resumes_exactly(one_rank, new_run, point):
    """SIGKILL at each step of publishing the step-6 checkpoint (files, manifest, rename,
    `latest`): the rerun takes the newest checkpoint that was published whole and ends where
    an uninterrupted run ends."""
    root = new_run(point)
    job = _job(root, 1, zero_stage=1, keep_last=3)
    assert _train(job, 1, Faults(kill_in_save=(6, point)), expect_ok=False) == [-signal.SIGKILL]
    ckpts = RunDir(root).checkpoints
    renamed = point in ("renamed", "published")
    assert sorted(p.name for p in ckpts.glob("step*")) == (["step3", "step6"] if renamed else ["step3"])
    assert (ckpts / "latest").read_text() == ("step6" if point == "published" else "step3")
    assert (ckpts / "tmp-step6").exists() != renamed  # a save cut short stays under its temporary name
    _train(job, 1)
    assert f"step{6 if renamed else 3} at step {6 if renamed else 3}" in _tail(job)
    assert _losses(root) == _losses(one_rank)  # exactly equal
    assert not list(ckpts.glob("tmp-*"))


def test_batch_ramp_grows_the_batch_and_resumes_exactly(new_run):
    ramp = {"global_batch_size": 32, "batch_ramp": {"start_batch": 8, "tokens": 16 * 50}}  # 50 sequences
    ref = new_run("ramp-ref")
    _train(_job(ref, 2, keep_last=3, **ramp), 2)  # keeps step 3, in the ramp, to resume from
    steps = _steps(ref)
    batches = [r["batch"] for r in steps]
    assert batches[0] == 8 and batches[-1] == 32 and batches == sorted(batches) and len(set(batches)) > 2
    assert [r["samples"] for r in steps] == list(np.cumsum(batches))
    # The optimizer (and the schedule) stepped exactly once per batch, at its end.
    assert [r["lr"] for r in steps] == pytest.approx([5e-3 * lr_multiplier(k, 2, STEPS, 0.1) for k in range(STEPS)])
    assert batches[2] < batches[-1]  # step 3 is inside the ramp
    killed = _interrupted(ref, new_run("ramp-killed"), (3,), killed_at=5)
    _train(_job(killed, 2, **ramp), 2)
    assert "step3 at step 3" in _tail(_job(killed, 2))
    assert _losses(killed) == _losses(ref) and [r["batch"] for r in _steps(killed)] == batches


def _served_positions(root: Path) -> list[int]:
    """The data position after every step: contiguous multiples of the global batch mean
    every position of the plan was served once, in order."""
    return [r["samples"] for r in _steps(root)]


@pytest.mark.parametrize("before,after,zero", [(2, 1, 1), (1, 2, 1), (2, 1, 0)])
def test_resume_on_another_number_of_ranks(reference, one_rank, new_run, before, after, zero):
    ref_root = reference["fp32"] if before == 2 else one_rank  # the same global batch either way
    if zero == 0:
        ref_root = new_run("ref")
        _train(_job(ref_root, before, zero_stage=zero, keep_last=3), before)
    root = _interrupted(ref_root, new_run(f"w{before}to{after}"), (3,), killed_at=5)
    _train(_job(root, after, zero_stage=zero), after)
    log = _tail(_job(root, after))
    assert f"world size {before} -> {after}" in log
    # ZeRO's shards are converted to a universal checkpoint; without ZeRO nothing is sharded.
    assert ("converting step3 (written by" in log) == (zero > 0)
    ref, got = _losses(ref_root), _losses(root)
    assert len(got) == STEPS and np.allclose(got, ref, atol=1e-2, rtol=0)
    assert _served_positions(root) == [8 * k for k in range(1, STEPS + 1)] == _served_positions(ref_root)
    summary = read_json(RunDir(root).train_summary)
    assert summary["world_size"] == after and summary["global_batch"] == 8
    assert summary["data"]["rows_by_source"] == read_json(RunDir(ref_root).train_summary)["data"]["rows_by_source"]
    # The conversion is discarded once a native checkpoint of the new world exists.
    assert not list(RunDir(root).checkpoints.glob("universal-*"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no_manifest"])
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(reference, new_run, damage):
    root = _interrupted(reference["fp32"], new_run(damage), (3, 6), killed_at=8)
    ckpts = RunDir(root).checkpoints
    assert sorted(p.name for p in ckpts.glob("step*")) == ["step3", "step6"]
    assert (ckpts / "latest").read_text() == "step6"
    victim = max((p for p in (ckpts / "step6").iterdir() if p.name.endswith("optim_states.pt")), key=lambda p: p.name)
    {"truncated": _truncate, "flipped": _flip, "no_manifest": lambda _: (ckpts / "step6" / "manifest.json").unlink()}[
        damage
    ](victim)
    _train(_job(root, 2), 2)
    log = _tail(_job(root, 2))
    named = "manifest.json is missing" if damage == "no_manifest" else victim.name
    assert "checkpoint step6 is not usable" in log and named in log
    assert "step3 at step 3" in log
    assert _losses(root) == _losses(reference["fp32"])  # nothing lost but time


def test_no_usable_checkpoint_is_refused_rather_than_silently_starting_over(reference, new_run):
    root = _interrupted(reference["fp32"], new_run("all-bad"), (3, 6), killed_at=8)
    ckpts = RunDir(root).checkpoints
    for tag in ("step3", "step6"):
        _flip(next((ckpts / tag).glob("*model_states.pt")))
    metrics = RunDir(root).metrics.read_text()
    assert _train(_job(root, 2), 2, expect_ok=False)[0] == 1
    log = _tail(_job(root, 2))
    assert "none of the 2 checkpoint(s)" in log and "move them away to train this run from step 0" in log
    assert RunDir(root).metrics.read_text() == metrics  # nothing of the trained steps was thrown away


def test_planted_spike_is_rolled_back_and_its_batches_skipped(reference, new_run):
    root = new_run("spike")
    spike = {"min_history": 3, "factor": 3.0, "max_rollbacks": 2}
    # Step 5 reads stream positions 32-39 (global batch 8): that batch is corrupt.
    _train(_job(root, 2, spike=spike), 2, Faults(poison_samples=(32, 40)))
    steps, events = read_metrics(RunDir(root).metrics)
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert len(events) == 1 and events[0]["step"] == 5 and events[0]["rolled_back_to"] == 3
    assert events[0]["skipped_samples"] == [32, 40] and "above 3x the mean" in events[0]["reason"]
    ref = _steps(reference["fp32"])
    assert [r["loss"] for r in steps[:4]] == [r["loss"] for r in ref[:4]]  # replayed identically
    assert all(r["loss"] < 2 * ref[0]["loss"] for r in steps)  # the spike never reached the curve
    # Every later step reads past the skipped batch: positions 40.. instead of 32..
    assert [r["samples"] for r in steps] == [8, 16, 24, 32, 48, 56, 64, 72]  # no step at 40
    summary = read_json(RunDir(root).train_summary)
    assert summary["rollbacks"] == 1 and summary["skipped_samples"] == [[32, 40]]
    from tasks.report import write_report

    report = write_report(root).read_text()
    assert "Loss spikes rolled back" in report and "| 5 |" in report


def test_persistent_divergence_stops_after_the_bound_naming_the_steps(new_run):
    root = new_run("diverge")
    spike = {"min_history": 3, "factor": 3.0, "max_rollbacks": 2}
    codes = _train(_job(root, 2, spike=spike), 2, Faults(poison_samples=(32, 10**9)), expect_ok=False)
    assert codes[0] == 1
    log = _tail(_job(root, 2))
    assert "DivergenceError: training diverged: bad steps [5, 5, 5] after 2 roll-back(s)" in log
    assert "lower training.lr" in log
    assert len(read_metrics(RunDir(root).metrics)[1]) == 3


@pytest.mark.parametrize("zero", [2, 3])
def test_zero_stages_on_two_ranks_match_one_rank(one_rank, new_run, zero):
    one = one_rank
    root = new_run(f"zero{zero}")
    _train(_job(root, 2, zero_stage=zero), 2)
    assert np.allclose(_losses(root), _losses(one), atol=1e-4, rtol=0)
    a, _ = load_model(RunDir(one).checkpoints / FINAL)
    b, meta = load_model(RunDir(root).checkpoints / FINAL)
    assert meta["step"] == STEPS
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-4), name


@pytest.mark.parametrize("zero,precision", [(1, "fp32"), (3, "bf16")])
def test_muon_resumes_bit_for_bit(new_run, zero, precision):
    """Muon's momentum lives in ZeRO's optimizer state: a run resumed from its step-3 checkpoint
    ends exactly where the uninterrupted run ends, losses and weights."""
    muon = {"optimizer": "muon", "min_workers": 2, "zero_stage": zero, "keep_last": 3}
    straight = new_run("muon")
    _train(_job(straight, 2, precision, **muon), 2)
    root = _interrupted(straight, new_run("muon-resumed"), (3,), killed_at=4)
    _train(_job(root, 2, precision, **muon), 2)
    assert "resumed from" in _tail(_job(root, 2)) and "step3 at step 3" in _tail(_job(root, 2))
    ref, got = _steps(straight), _steps(root)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in got] == [r["loss"] for r in ref]  # exactly equal, not approximately
    assert [r["grad_norm"] for r in got] == [r["grad_norm"] for r in ref]
    a, _ = load_model(RunDir(straight).checkpoints / FINAL)
    b, _ = load_model(RunDir(root).checkpoints / FINAL)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_zero3_bf16_exports_fp32_master_weights_that_evaluate(new_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from infra.app.cli import main as crucible
    from tasks.evaluation.config import EvaluationConfig
    from tasks.evaluation.evaluate import validation_perplexity

    root = new_run("z3bf16")
    _train(_job(root, 2, "bf16", zero_stage=3), 2)
    run = RunDir(root)
    model, _ = load_model(run.checkpoints / FINAL)
    # The optimizer's fp32 master weights, not the bf16 module weights cast to fp32.
    assert any(not torch.equal(w, w.bfloat16().float()) for w in model.parameters())
    manifest = read_manifest(run.shards)
    x = torch.randint(0, manifest["vocab_size"], (2, 16))
    dest = tmp_path / "hf"
    assert crucible(["export", str(root), "--out", str(dest)]) == 0  # `crucible export` on the run
    hf = AutoModelForCausalLM.from_pretrained(dest).eval()
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, model(x), atol=1e-4)
    ppl = validation_perplexity(root, EvaluationConfig(perplexity_max_rows=64, batch_size=8))
    final_val = [r["val_loss"] for r in _steps(root) if "val_loss" in r][-1]
    assert 1.0 < ppl["perplexity"] < 2 * np.exp(final_val)  # the evaluation stage scores the gathered model


def test_sigterm_saves_a_checkpoint_then_a_rerun_resumes(reference, new_run):
    root = new_run("preempt")
    job = _job(root, 2, max_steps=200, checkpoint_every=1000, eval_every=1000)  # SIGTERM comes at step 3 or so
    running = LocalJob(job, 2)
    metrics = RunDir(root).metrics
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.02)
    running.signal(signal.SIGTERM)
    codes = running.wait(300)
    assert codes == [1, 1], _tail(job)
    saved = sorted(int(p.name[4:]) for p in RunDir(root).checkpoints.glob("step*"))
    assert len(saved) == 1 and 3 <= saved[0] < 200  # saved where it stood, not at a multiple of 1000
    assert "Preempted: stopped at step" in _tail(job)
    _train(job, 2)
    assert f"step{saved[0]} at step {saved[0]}" in _tail(job)
    assert [r["step"] for r in _steps(root)] == list(range(1, 201))


def test_metrics_record_throughput_mfu_and_memory_and_checkpoints_are_retained(reference, source):
    root = reference["fp32"]
    run = RunDir(root)
    steps = _steps(root)
    summary = read_json(run.train_summary)
    data = TrainingData(run.shards, seed=1234)
    # tokens counts real targets only: padding in the served rows is not counted.
    src, rows = data.stream.lookup(np.arange(STEPS * 8))
    _, lengths = zip(*(data.rows[s].rows(np.array([r])) for s, r in zip(src, rows)))
    assert sum(r["tokens"] for r in steps) == int(sum(int(n[0]) - 1 for n in lengths))
    for r in steps:
        assert r["tokens_per_s"] > 0 and r["peak_mem_mb"] > 0 and r["data_wait_s"] >= 0
        assert r["mfu"] == pytest.approx(summary["training_flops_per_token"] * r["tokens_per_s"] / (2 * 1e12))
        assert r["loss_scale"] is None and r["skipped_steps"] == 0 and r["batch"] == 8
    assert [r["step"] for r in steps if "val_loss" in r] == [4, 8]
    # Retention: the last two checkpoints by default (step 8 is also the best by validation
    # loss), the last three where keep_last says so.
    assert sorted(p.name for p in RunDir(reference["bf16"]).checkpoints.glob("step*")) == ["step6", "step8"]
    assert sorted(p.name for p in run.checkpoints.glob("step*")) == ["step3", "step6", "step8"]
    manifest = read_json(run.checkpoints / "step8" / "manifest.json")
    assert manifest["world_size"] == 2 and manifest["training"]["lr"] == 5e-3 and manifest["val_loss"] > 0
    assert {"rng-rank0.pt", "rng-rank1.pt"} <= set(manifest["files"])
    assert list((root / "tensorboard").glob("events.out.tfevents.*"))
    assert summary["hosts"] and len(summary["hosts"]) == 2


def test_time_based_saves(new_run):
    root = new_run("timed")
    _train(_job(root, 1, max_steps=4, checkpoint_every=100, checkpoint_every_minutes=1e-4, keep_best=False), 1)
    # A save at every step (the clock is always past due), of which the last two are kept.
    assert sorted(p.name for p in RunDir(root).checkpoints.glob("step*")) == ["step3", "step4"]

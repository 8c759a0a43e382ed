"""training.eval_tasks: benchmarks scored on the current weights during training, with the
evaluation stage's own code. They must leave the training bit for bit as it was, survive a
resume without doubled or missing points, reach every metrics sink, and fail in the driver
(before any worker starts) when their files are missing or their items do not fit."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from infra.core.storage import RunDir, read_json
from models.gpt import GPT
from models.presets import get_preset
from tasks.evaluation.harness import TaskRun, run_task
from tasks.evaluation.models import crucible_model, load_eval_model
from tasks.report import write_report
from tasks.training.checks import TrainingConfigError, check_training
from tasks.training.config import OPERATIONAL_KEYS, RESUMABLE_CHANGES, TrainingConfig
from tasks.training.eval_tasks import check_eval_tasks, prepare_eval_tasks, score_eval_tasks
from tasks.training.metrics import MetricsSink, read_metrics
from tasks.training.prefect_tasks import metrics_table
from tasks.training.trainer import plan_job
from tests.conftest import build_token_run
from tests.tasks.training.test_loop import _interrupted, _job, _steps, _train

MODEL = get_preset("debug").model
BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "eval"
# Both fit the 16-token window of the test runs (hellaswag's endings do not: see below).
TASKS = [{"task": "arc_easy", "limit": 3}, {"task": "mmlu", "limit": 2}]
EVAL = {"eval_tasks": TASKS, "eval_tasks_every": 3}  # with 8 steps: points 3, 6 and the last, 8


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source")
    build_token_run(root, {"alpha": 300, "beta": 200})  # seq_len 16
    return root


def _copy(source: Path, root: Path) -> Path:
    root.mkdir()
    for part in ("shards", "tokenizer"):
        shutil.copytree(source / part, root / part)
    return root


def test_the_config_names_the_tasks_and_keeps_them_operational():
    assert TrainingConfig().eval_tasks == []  # off by default
    with pytest.raises(ValueError, match="unknown eval task 'arc'; the multiple-choice tasks are arc_easy, "):
        TrainingConfig(eval_tasks=[{"task": "arc"}])
    with pytest.raises(ValueError, match=r"eval_tasks names \['mmlu'\] more than once"):
        TrainingConfig(eval_tasks=[{"task": "mmlu"}, {"task": "mmlu", "limit": 5}])
    # Neither changes the model: a resume may change them, and a finished training is not redone.
    assert {"eval_tasks", "eval_tasks_every"} <= OPERATIONAL_KEYS & set(RESUMABLE_CHANGES)


def test_missing_files_stop_the_driver_with_the_fix(tmp_path):
    cfg = TrainingConfig(eval_tasks=[{"task": "arc_easy"}])
    with pytest.raises(TrainingConfigError, match=r"arc_easy reads .*arc_easy/test\.jsonl, which does not exist") as e:
        check_eval_tasks(cfg, str(tmp_path))
    assert "set evaluation.benchmarks_dir to a folder holding arc_easy/test.jsonl" in str(e.value)
    assert "load_dataset('allenai/ai2_arc', 'ARC-Easy', split='test')" in str(e.value)
    with pytest.raises(TrainingConfigError, match=r"needs the benchmark files: set evaluation\.benchmarks_dir"):
        check_eval_tasks(cfg, None)
    check_eval_tasks(cfg, str(BENCH))  # the fixture files: fine
    check_eval_tasks(TrainingConfig(), None)  # none configured: nothing to check


def test_the_train_stage_hands_the_evaluation_folder_over_and_checks_it_in_preflight(tmp_path):
    from flows.stage import get_stage
    from infra.app.config import load_config

    train = get_stage("train")
    on = ["training.eval_tasks=[{task: arc_easy, limit: 5}]"]
    assert train.arguments(load_config("debug", [*on, f"evaluation.benchmarks_dir={BENCH}"]), "r")[-1] == str(BENCH)
    assert train.arguments(load_config("debug", []), "r")[-1] is None  # none configured: nothing handed over
    empty = tmp_path / "benchmarks"
    empty.mkdir()
    cfg = load_config("debug", [*on, f"evaluation.benchmarks_dir={empty}", "evaluation.samples_dir=null"])
    with pytest.raises(TrainingConfigError, match=r"arc_easy reads .*benchmarks/arc_easy/test\.jsonl, which does not"):
        train.preflight(cfg, RunDir(tmp_path / "run"), {"tokenize": "run", "train": "run"})


def test_a_choice_longer_than_the_window_stops_plan_job(source):
    cfg = TrainingConfig(num_workers=1, micro_batch_size=4, max_steps=8, warmup_steps=2, zero_stage=0, precision="fp32")
    run = RunDir(source)
    plan_job(
        run, MODEL, cfg.model_copy(update={"eval_tasks": TrainingConfig(**EVAL).eval_tasks}), 0.0, None, str(BENCH)
    )
    too_long = TrainingConfig(**{**cfg.model_dump(), "eval_tasks": [{"task": "hellaswag"}]})
    with pytest.raises(TrainingConfigError, match=r"longest choice of hellaswag is \d+ tokens, more than the model's "):
        plan_job(run, MODEL, too_long, 0.0, None, str(BENCH))


def test_pipeline_parallelism_is_refused_before_workers_start():
    cfg = TrainingConfig(num_workers=2, micro_batch_size=4, parallel={"pipeline": 2}, eval_tasks=TASKS)
    with pytest.raises(TrainingConfigError, match="eval_tasks with pipeline or tensor parallelism is not supported"):
        check_training(cfg, MODEL, "cpu", "fp32")


class _Engine(torch.nn.Module):
    """What score_eval_tasks reads of a DeepSpeed engine: the module, and train/eval."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module


def test_scoring_equals_the_evaluation_stage_and_leaves_the_model_as_it_was(source):
    run = RunDir(source)
    vocab = read_json(run.manifest)["vocab_size"]
    torch.manual_seed(0)
    gpt = GPT(MODEL.model_copy(update={"dropout": 0.1}), vocab, 16).train()
    evals = prepare_eval_tasks(TrainingConfig(**EVAL).eval_tasks, BENCH, run.tokenizer, 16)
    random.seed(5)
    np.random.seed(5)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    got = score_eval_tasks(evals, _Engine(gpt), torch.device("cpu"))
    assert gpt.training and all(p.grad is None for p in gpt.parameters())
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    stage = crucible_model("stage", gpt.eval(), run.tokenizer, 16)
    want = {}
    for t in TASKS:
        result = run_task(stage, TaskRun(t["task"], limit=t["limit"]), BENCH)
        want.update({f"eval/{t['task']}/{m}": result[m] for m in ("acc", "acc_norm")})
    assert got == want


def test_eval_figures_reach_the_metrics_table_the_report_and_tensorboard(tmp_path):
    run = RunDir(tmp_path)
    records = [
        {"step": 1, "loss": 5.0, "lr": 1e-3, "tokens_per_s": 10.0, "peak_mem_mb": 1.0},
        {"step": 2, "loss": 4.0, "lr": 1e-3, "tokens_per_s": 10.0, "eval/arc_easy/acc": 0.25, "eval/mmlu/acc": 0.5},
        {"step": 3, "loss": 3.0, "lr": 1e-3, "tokens_per_s": 10.0, "val_loss": 3.5},
        {"step": 4, "loss": 2.0, "lr": 1e-3, "tokens_per_s": 10.0, "eval/arc_easy/acc": 0.75, "eval/mmlu/acc": 0.5},
    ]
    table = metrics_table(records, [])
    assert [r["step"] for r in table] == [2, 3, 4]
    assert [r["eval/arc_easy/acc"] for r in table] == [0.25, None, 0.75]
    tags: list[str] = []
    sink = MetricsSink(run.metrics, None, 0)
    sink.tb = type("TB", (), {"add_scalar": lambda self, tag, *a: tags.append(tag), "flush": lambda self: None})()
    for r in records:
        sink.write(r)
    assert "eval/arc_easy/acc" in tags and "train/loss" in tags and "train/eval/arc_easy/acc" not in tags
    report = write_report(tmp_path).read_text()
    assert "### Benchmarks during training" in report and "![benchmark curves](eval_curves.png)" in report
    assert "| arc_easy | acc | 0.25 | 0.75 | 0.75 |" in report
    assert run.eval_curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- real DeepSpeed ranks (2 gloo processes, the helpers of test_loop.py) -----------------


def _eval_job(root: Path, **training):
    job = _job(root, 2, zero_stage=3, dropout=0.1, **training)
    return replace(job, benchmarks_dir=str(BENCH))


def _points(root: Path) -> list[int]:
    return [r["step"] for r in _steps(root) if any(k.startswith("eval/") for k in r)]


@pytest.fixture(scope="module")
def scored(source, tmp_path_factory) -> Path:
    """A 2-rank ZeRO-3 run with dropout and eval_tasks, keeping its step-3 checkpoint."""
    root = _copy(source, tmp_path_factory.mktemp("scored") / "run")
    _train(_eval_job(root, keep_last=3, **EVAL), 2)
    return root


@pytest.mark.slow
@pytest.mark.integration
def test_eval_tasks_leave_the_losses_bit_identical_under_zero3(source, scored, tmp_path):
    plain = _copy(source, tmp_path / "plain")
    _train(_eval_job(plain, keep_last=3), 2)
    got, ref = _steps(scored), _steps(plain)
    assert [r["loss"] for r in got] == [r["loss"] for r in ref]  # exactly equal, not approximately
    assert [r["grad_norm"] for r in got] == [r["grad_norm"] for r in ref]
    assert _points(scored) == [3, 6, 8] and _points(plain) == []
    # The last point scores what the evaluation stage scores on the final model.
    final = load_eval_model(scored)
    last = got[-1]
    for t in TASKS:
        result = run_task(final, TaskRun(t["task"], limit=t["limit"]), BENCH)
        assert [last[f"eval/{t['task']}/{m}"] for m in ("acc", "acc_norm")] == [result["acc"], result["acc_norm"]]


@pytest.mark.slow
@pytest.mark.integration
def test_a_resume_keeps_every_eval_point_once(scored, source, tmp_path):
    # Killed at step 7 with only the step-3 checkpoint: metrics.jsonl holds steps 1-6, with the
    # points of steps 3 and 6; the resume trains 4-8 again, at a new cadence (every 2 steps).
    root = _interrupted(scored, _copy(source, tmp_path / "resumed"), (3,), killed_at=7)
    assert _points(root) == [3, 6]
    _train(_eval_job(root, **{**EVAL, "eval_tasks_every": 2}), 2)
    steps, _ = read_metrics(RunDir(root).metrics)
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert _points(root) == [3, 4, 6, 8]  # 3 kept, 6 scored again (once), 4 and 8 at the new cadence
    ref = {r["step"]: r for r in _steps(scored)}
    assert [r["loss"] for r in steps] == [ref[r["step"]]["loss"] for r in steps]
    for r in steps:
        if r["step"] in (3, 6, 8):  # the same weights as the uninterrupted run: the same scores
            assert {k: v for k, v in r.items() if k.startswith("eval/")} == {
                k: v for k, v in ref[r["step"]].items() if k.startswith("eval/")
            }

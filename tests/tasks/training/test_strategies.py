"""What the training loop does the same under every strategy (tasks/training/strategy.py):
a poisoned stretch of data is caught and rolled back under pipeline parallelism as under
data parallelism (tests/tasks/training/test_loop.py), on real DeepSpeed pipeline engines
over gloo."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.core.storage import RunDir, read_json
from models.presets import get_preset
from tasks.training.launch import run_local
from tasks.training.loop import Faults, TrainJob
from tasks.training.metrics import read_metrics
from tests.conftest import build_token_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # starts DeepSpeed engines in fresh processes

STEPS = 10


def _job(root: Path) -> TrainJob:
    cfg = {
        "num_workers": 2,
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
        "parallel": {"pipeline": 2, "tensor": 1},
        "spike": {"min_history": 3, "factor": 3.0, "max_rollbacks": 2},
    }
    model = get_preset("debug").model.model_copy(update={"n_layer": 2, "n_head": 4, "d_model": 48})
    return TrainJob(str(root), cfg, model.model_dump(mode="json"), "cpu", "fp32")


def test_planted_spike_is_rolled_back_under_pipeline_parallelism(tmp_path):
    root = tmp_path / "run"
    build_token_run(root, {"alpha": 300, "beta": 200})
    # Step 6 reads stream positions 40-47 (global batch 8): that batch is corrupt.
    codes = run_local(_job(root), 2, Faults(poison_samples=(40, 48)), timeout=600)
    logs = root / "logs"
    assert codes == [0, 0], "\n".join((logs / f"rank{r}.log").read_text()[-3000:] for r in range(2))
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

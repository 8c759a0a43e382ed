"""A micro-sweep through the real flow: the session's curated and tokenized debug run is reused
(its stages skipped), six tiny runs (three shapes at two compute budgets) train as `train`
subflows of the sweep, two at a time on the shared Ray head, and the fits, report and
`crucible plan --fit` read what they measured. The fits themselves are tested on synthetic
data in tests/tasks/scaling/."""

from __future__ import annotations

import json
import math
import re

import httpx
import numpy as np
import pytest

from infra.core.storage import read_json
from tasks.training.metrics import read_metrics
from tests.flows.e2e_env import crucible, prefect_client

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SHAPES = "[{n_layer: 1, d_model: 32}, {n_layer: 2, d_model: 48}, {n_layer: 3, d_model: 64}]"


def _children(api: str, flow_run_id: str) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client(api) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
            sort=FlowRunSort.START_TIME_ASC,
            limit=50,
        )


def _target_tokens(shards) -> int:
    """Scored next-token targets of the validation split, counted here from the shards."""
    from tasks.tokenization.reader import IGNORE, TokenRows, to_batch

    rows = TokenRows.open(shards, "val")
    _, y = to_batch(*rows.rows(np.arange(len(rows))))
    return int((y != IGNORE).sum())


def test_a_micro_sweep_trains_its_grid_as_subflows_and_fits_it(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "sw", upto="tokenize")
    result = crucible(
        "sweep", "-c", "debug", "--run-id", "sw", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(),
        "--set", "training.num_workers=1", "--set", "training.zero_stage=0", "--set", "training.precision=fp32",
        "--set", f"sweep.shapes={SHAPES}", "--set", "sweep.budgets=[3.0e+9, 6.0e+9]",
        "--set", "sweep.min_steps=5", "--set", "sweep.bootstrap=20", "--set", "sweep.parallel_runs=2",
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "curate: skip; tokenize: skip" in out  # the shards were made once, by the session's run

    sweep = read_json(run.root / "sweep.json")
    runs = sweep["runs"]
    assert len(runs) == 6 and all(r["status"] == "finished" for r in runs), runs
    step_tokens = 4 * 64  # debug preset: micro-batch 4 on one worker, 64-token rows
    scored = _target_tokens(run.shards)
    for r in runs:
        assert r["tokens"] == r["steps"] * step_tokens and r["steps_trained"] == r["steps"]
        assert r["flops"] == r["flops_per_token"] * r["tokens"] == r["training_flops"]
        assert r["steps"] == round(r["budget"] / (r["flops_per_token"] * step_tokens))  # the budget, in whole steps
        assert 0 < r["non_embedding_parameters"] < r["parameters"]
        assert r["val_tokens"] == scored  # every scored token of the whole split, not a prefix
        assert math.isfinite(r["val_loss"]) and r["val_loss"] < math.log(1024)  # below chance after training
        # The schedule fitted to the run's own length: it reaches its floor at its own last step.
        lrs = [x["lr"] for x in read_metrics(run.root / "grid" / r["name"] / "metrics.jsonl")[0] if "lr" in x]
        assert len(lrs) == r["steps"] and lrs[-1] == pytest.approx(0.005 * 0.1, rel=1e-6)
    # A budget buys a larger model fewer tokens.
    first = sorted((r for r in runs if r["budget"] == 3.0e9), key=lambda r: r["parameters"])
    assert [r["tokens"] for r in first] == sorted((r["tokens"] for r in first), reverse=True)

    match = re.search(r"/flow-run/([0-9a-f-]+)", out)
    assert match is not None, out[-2000:]
    children = [c for c in _children(e2e.api, match.group(1)) if c.name.startswith("sw-c")]
    assert sorted(c.name for c in children) == sorted(f"sw-{r['name']}" for r in runs)
    assert all(c.state.type.value == "COMPLETED" for c in children)
    # Two at a time: some pair of training subflows ran during the same seconds.
    spans = sorted((c.start_time, c.end_time) for c in children)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1)), spans

    # Over plain HTTP: this Prefect client's artifact filter sends nulls that its server refuses.
    made = httpx.post(
        f"{e2e.api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [match.group(1)]}}, "limit": 20},
        timeout=30,
    ).json()
    report_artifact = next(a["data"] for a in made if a["key"] == "sweep-report")
    assert "## Scaling-law sweep" in report_artifact
    assert "data:image/png;base64" in report_artifact  # the plots travel inside it, for the UI
    table = next(a["data"] for a in made if a["key"] == "sweep-runs")
    assert len(json.loads(table) if isinstance(table, str) else table) == len(runs)

    fit = read_json(run.root / "fit.json")
    held = fit["held_out"]
    assert held["name"] == max(runs, key=lambda r: r["flops"])["name"]
    assert held["measured"] == next(r["val_loss"] for r in runs if r["name"] == held["name"])
    assert (run.root / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run.root / "report.md").read_text()
    assert "## Scaling-law sweep" in report and held["name"] in report

    planned = crucible("plan", "--fit", str(run.root), "--budget", "1e16")
    assert planned.returncode == 0, planned.stderr
    assert "fitted compute-optimal split" in planned.stdout
    assert "warning: this plan extrapolates" in planned.stdout  # 1e16 is far beyond 6e9

    # `crucible resume` goes on with a sweep's run directory as a sweep: nothing is left to train.
    again = crucible("resume", "sw", "--runs-dir", str(tmp_path), *e2e.runtime_sets())
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "for flow 'sweep'" in again.stdout + again.stderr
    assert read_json(run.root / "sweep.json")["runs"] == runs  # finished runs are not trained again

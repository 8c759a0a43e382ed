"""A served pipeline on a short interval, with a real `prefect server start` (its scheduler
creates the runs): it runs on its own; the second run curates only the file added after the
first one curated, removes the repeat of an earlier document, and continues pre-training
from the first run's model; a run with nothing new skips the later stages."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra.core.storage import RunDir, read_json, sha256_file
from tests.flows.e2e_env import ROOT, prefect_client, serving, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
FIXTURES = ROOT / "tests" / "fixtures" / "corpus"


def _deployment_runs(api: str, deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client(api) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )
    return [r for r in runs if r.state and r.state.type.value != "SCHEDULED"]


def _run_dir(runs: Path, fr) -> RunDir:
    return RunDir(runs / f"every20s-{fr.name}-{str(fr.id)[-8:]}")


def _first_loss(run: RunDir) -> float:
    return json.loads(run.metrics.read_text().splitlines()[0])["loss"]


def test_a_served_schedule_runs_on_its_own_and_curates_only_what_is_new(e2e, tmp_path):
    prefect_api = e2e.api
    inputs = tmp_path / "input"
    inputs.mkdir()
    for name in ("part-0.jsonl", "part-1.jsonl"):
        shutil.copy(FIXTURES / name, inputs / name)
    runs = tmp_path / "runs"
    started = time.monotonic()
    args = [
        "--interval",
        "20",
        "--set",
        f"runs_dir={runs}",
        "--set",
        f"curation.input_path={inputs}",
        "--set",
        "curation.noise=null",
        "--set",
        "curation.incremental=true",
        "--set",
        "training.init_from_previous=true",
        "--set",
        "evaluation.formulations=[cloze]",  # evaluation is not what this is about: one task, cloze only
        "--set",
        "evaluation.tasks=[arc_easy]",
    ]
    with serving(e2e, "every20s", args, tmp_path / "serve.log") as deployment:
        first = wait_for(lambda: _deployment_runs(prefect_api, deployment.id), 180, "the first scheduled run")[0]
        print(f"time from crucible serve to the first scheduled run: {time.monotonic() - started:.0f} s")
        run1 = _run_dir(runs, first)
        # Once the first run has listed and curated its input, a new file arrives, holding new
        # documents and a repeat of one the first run kept.
        wait_for(run1.curation_stats.is_file, 300, "the first run's curation")
        kept = json.loads((FIXTURES / "part-0.jsonl").read_text().splitlines()[0])
        new_file = inputs / "part-2.jsonl"
        new_file.write_text(
            (FIXTURES / "part-2.jsonl").read_text().rstrip("\n")
            + "\n"
            + json.dumps({**kept, "id": "repeat-of-" + kept["id"]})
            + "\n"
        )

        def finished_runs():
            done = [r for r in _deployment_runs(prefect_api, deployment.id) if r.state.is_final()]
            return done if len(done) >= 3 else None

        finished = wait_for(finished_runs, 900, "three finished runs")
    assert [r.state.type.value for r in finished[:3]] == ["COMPLETED"] * 3, [r.state for r in finished[:3]]
    first, second, third = (_run_dir(runs, r) for r in finished[:3])
    assert len({first.root, second.root, third.root}) == 3  # a directory of its own per run

    s1, s2 = read_json(first.curation_stats), read_json(second.curation_stats)
    assert s1["input_files"] == 2 and s2["input_files"] == 1
    inc = s2["details"]["incremental"]
    assert inc["previous_run"] == str(first.root) and inc["unchanged_files"] == 2 and inc["reference_shards"] >= 1
    removed = s2["totals"]["removed_by_reason"]
    gone = {r["id"]: r for p in second.removed.glob("dedup-*.parquet") for r in pq.read_table(p).to_pylist()}
    repeat = gone["repeat-of-" + kept["id"]]  # last week's document is removed this week too
    assert repeat["reason"] == "previous_run_duplicate" and repeat["detail"] == f"duplicate of {kept['id']}"
    assert removed["previous_run_duplicate"]["docs"] == sum(
        r["reason"] == "previous_run_duplicate" for r in gone.values()
    )
    assert s2["totals"]["docs_in"] == s2["totals"]["docs_kept"] + sum(v["docs"] for v in removed.values())
    # Continued pre-training: the first run's model and tokenizer, so training starts lower.
    summary = read_json(second.train_summary)
    assert summary["init_from"] == str(first.checkpoints / "final")
    assert sha256_file(second.tokenizer) == sha256_file(first.tokenizer)
    assert _first_loss(second) < _first_loss(first) - 0.3

    # Nothing changed since the second run: the third curates nothing and stops there.
    s3 = read_json(third.curation_stats)
    assert s3["input_files"] == 0 and s3["details"]["incremental"]["unchanged_files"] == 3
    assert not third.train_summary.exists() and not third.manifest.exists()

"""A fifth stage needs one `Stage` entry and its flow (tests/flows/finetune_stage.py), nothing
else: `crucible run` runs it after the four built-in stages (skipped, unchanged, on a copy of
the session's run), its own CLI verb runs it again, and its records and keys are kept as the
built-in stages' are."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from infra.core.storage import read_json
from tests.flows.e2e_env import ROOT, crucible, prefect_client

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _with_finetune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.flows.finetune_stage", *args],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip


def _subflows(api: str, flow_run_id: str) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client(api) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
            sort=FlowRunSort.START_TIME_ASC,  # this client sends a null sort otherwise, which the server refuses
            limit=50,
        )
        return {client.read_flow(r.flow_id).name: r.state.type.value for r in children}


def test_a_fifth_stage_runs_in_the_pipeline_and_as_its_own_verb(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "e2e")
    before = read_json(run.root / "stages.json")
    sets = ("--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets())

    assert "finetune" not in crucible("--help").stdout  # the entry is the only thing that adds it
    assert "fine-tune the trained model" in _with_finetune("--help").stdout

    result = _with_finetune("run", *sets)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "curate: skip; tokenize: skip; train: skip; evaluate: skip; finetune: not run yet" in out
    made = read_json(run.root / "finetune.json")
    assert made == {"from_step": read_json(run.train_summary)["steps"], "lr": 0.005, "runs": 1}
    records = read_json(run.root / "stages.json")
    assert {k: records[k] for k in before} == before  # the built-in stages' records untouched
    assert records["finetune"]["status"] == "finished"
    assert records["finetune"]["upstream"] == records["evaluate"]["key"]  # keyed after evaluation
    assert records["finetune"]["config"]["lr"] == 0.005  # its config section is what its key hashes
    match = re.search(r"/flow-run/([0-9a-f-]+)", out)
    assert match is not None, out[-2000:]
    assert _subflows(e2e.api, match.group(1)) == {"finetune": "COMPLETED"}  # the only one not skipped

    # Its own verb: run again as asked, recorded the same way.
    result = _with_finetune("finetune", *sets)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert read_json(run.root / "finetune.json")["runs"] == 2
    again = read_json(run.root / "stages.json")
    assert again["finetune"]["status"] == "finished" and again["finetune"]["key"] == records["finetune"]["key"]

    # A whole-pipeline re-run now has nothing to do, the fifth stage included.
    result = _with_finetune("run", *sets)
    assert result.returncode == 0 and "every stage is unchanged since it finished" in result.stdout
    assert read_json(run.root / "finetune.json")["runs"] == 2

"""The debug pipeline on a Ray cluster of two hosts (network namespaces made by the test,
tests/flows/netns.py): a head and a worker started with `ray start`, one CPU each, and the
Prefect server on the head's address with basic auth. Then the worker host is killed at a
training step, and either comes back or stays down.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.core.storage import RunDir, read_json
from tests.flows.e2e_env import CRUCIBLE, ROOT, wait_for
from tests.flows.netns import Cluster, unavailable

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(1800)]
AUTH = "crucible:multi-host-test"
KILL_AT_STEP = 8  # the debug preset checkpoints at step 6 and trains 12 steps


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(f"multi-host test skipped: {why}")
    # The Prefect credentials are in each node's environment, as an operator sets them where Ray
    # starts: Crucible does not pass them through Ray, whose job records cluster clients read.
    with Cluster(tmp_path_factory.mktemp("netns-logs"), node_env={"PREFECT_API_AUTH_STRING": AUTH}) as c:
        yield c


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The 'shared filesystem': the same path on both hosts."""
    return tmp_path_factory.mktemp("shared-runs")


@pytest.fixture(scope="module")
def head_prefect(cluster, shared):
    """`crucible server` on the head's address with basic auth, as an operator starts it; the
    module's runs find it there and report to it (each would otherwise start its own)."""
    log = shared / "prefect-server.log"
    env = {"PREFECT_SERVER_API_AUTH_STRING": AUTH, "PREFECT_HOME": str(shared / "prefect-home")}
    proc = cluster.popen(cluster.head, [CRUCIBLE, "server", "--host", cluster.head.address, "--port", "4300"], log,
                         env=env, cwd=ROOT)  # fmt: skip
    probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/health', timeout=5)"
    url = f"http://{cluster.head.address}:4300/api"
    wait_for(lambda: proc.poll() is not None or cluster.run(cluster.head, [sys.executable, "-c", probe, url],
                                                            timeout=30).returncode == 0,
             120, "the Prefect server on the head", poll=0.5)  # fmt: skip
    assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def _start(
    cluster: Cluster, runs: Path, run_id: str, *sets: str, command: str = "run", env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, Path]:
    """`crucible COMMAND` from the head, reporting to the Prefect server on the head's address
    (started by the command itself unless `head_prefect` runs it already)."""
    log = runs / f"{run_id}.log"
    home = runs / "prefect-home"
    proc = cluster.popen(
        cluster.head,
        [
            CRUCIBLE,
            command,
            "-c",
            "debug",
            "--run-id",
            run_id,
            "--set",
            f"runs_dir={runs}",
            "--set",
            f"runtime.ray_address={cluster.ray_address}",
            "--set",
            f"runtime.prefect_host={cluster.head.address}",
            "--set",
            "runtime.prefect_port=4300",
            *sets,
        ],
        log,
        env={"PREFECT_SERVER_API_AUTH_STRING": AUTH, "PREFECT_HOME": str(home), **(env or {})},
        cwd=ROOT,
    )
    return proc, log


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 900) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    return text


def _steps(run: RunDir) -> list[dict]:
    return [r for r in map(json.loads, run.metrics.read_text().splitlines()) if "loss" in r]


def _losses(run: RunDir) -> list[float]:
    return [r["loss"] for r in _steps(run)]


def _addresses(nodes: dict) -> set[str]:
    return {label.split(" ")[0] for label in nodes["tasks_by_node"]}


@pytest.fixture(scope="module")
def multihost_run(cluster, shared, head_prefect):
    proc, log = _start(cluster, shared, "two-hosts")
    return RunDir(shared / "two-hosts"), _finish(proc, log)


def test_debug_pipeline_across_two_hosts_equals_a_single_host_run(cluster, multihost_run, pipeline_run):
    run, log = multihost_run
    single = pipeline_run.run
    both = {h.address for h in cluster.hosts}
    assert f"cluster check: 2 node(s) see {run.root}" in log
    # Curation and tokenization tasks ran on both hosts.
    curation = read_json(run.curation_stats)
    assert _addresses(curation["nodes"]) == both, curation["nodes"]["tasks_by_node"]
    assert _addresses(read_json(run.tokenization_stats)["nodes"]) == both
    # The two training ranks ran on different hosts, over gloo between them.
    summary = read_json(run.train_summary)
    assert {h.split(" ")[0] for h in summary["hosts"]} == both and summary["world_size"] == 2
    # The same results as on one host: counts, shards, losses step for step.
    reference = read_json(single.curation_stats)
    assert curation["totals"] == reference["totals"] and curation["steps"] == reference["steps"]
    assert read_json(run.manifest) == read_json(single.manifest)  # every shard's rows, tokens and SHA-256
    assert _losses(run) == _losses(single) and len(_losses(run)) == 12  # gloo over the veth: bit for bit
    got, want = read_json(run.eval_results), read_json(single.eval_results)
    assert got["tasks"] == want["tasks"] and got["perplexity"] == want["perplexity"]


def _train_on_its_data(cluster: Cluster, shared: Path, multihost_run, run_id: str, *sets: str):
    """`crucible train` on a copy of the two-host run's curated data and token shards: the
    fault cases are about training, and skip re-curating and evaluating (minutes in CI).
    Training holds at the start of step 8 (the hold drill) until the worker host is killed."""
    source, _ = multihost_run
    for part in ("curated", "tokenizer", "shards"):
        shutil.copytree(source.root / part, shared / run_id / part)
    hold = {"CRUCIBLE_DRILL_HOLD_AT_STEP": str(KILL_AT_STEP)}
    return _start(cluster, shared, run_id, *sets, command="train", env=hold)


def _kill_worker_at_step(cluster: Cluster, run: RunDir, proc: subprocess.Popen) -> int:
    """SIGKILL every process of the worker host while training holds at step 8 (after the
    step-6 checkpoint, before the one at step 12), then let training go on into the loss."""

    def holding() -> bool:
        assert proc.poll() is None, "the run ended before the step at which the worker host is killed"
        return (run.root / "logs" / f"drill-holding-at-step{KILL_AT_STEP}").is_file()

    wait_for(holding, 900, f"training to hold at step {KILL_AT_STEP}", poll=0.2)
    assert [r["step"] for r in _steps(run)] == list(range(1, KILL_AT_STEP))
    killed = cluster.kill_host(cluster.hosts[1])
    (run.root / "logs" / "drill-release").write_text("the worker host is down\n")
    return killed


def test_worker_host_killed_then_restarted_resumes_from_the_checkpoint(cluster, shared, multihost_run):
    proc, log = _train_on_its_data(cluster, shared, multihost_run, "host-returns")
    run = RunDir(shared / "host-returns")
    try:
        assert _kill_worker_at_step(cluster, run, proc) > 0
        time.sleep(5)  # the host is down for a while, then reboots
        cluster.start(cluster.hosts[1])
        text = _finish(proc, log)
    finally:
        if cluster.hosts[1].proc is None or cluster.hosts[1].proc.poll() is not None:
            cluster.start(cluster.hosts[1])  # leave the cluster whole for the next test
    events = [e["event"] for e in read_json(run.train_summary)["events"]]
    assert events[:1] == ["ranks_lost"] and "restarting" in events and "continuing_smaller" not in events, text[-3000:]
    # Resumed from the checkpoint at step 6 (at or before the kill), on both hosts again.
    assert re.search(r"resumed from \S+step6 at step 6", text), text[-4000:]
    summary = read_json(run.train_summary)
    assert summary["world_size"] == 2 and len({h.split(" ")[0] for h in summary["hosts"]}) == 2
    reference, _ = multihost_run
    final = {r["step"]: r["loss"] for r in _steps(run)}  # a redone step's newest record
    assert sorted(final) == list(range(1, 13))
    assert [final[k] for k in range(1, 13)] == _losses(reference)
    assert "Lost ranks and hosts" in run.report.read_text()


def test_worker_host_that_stays_down_leaves_the_run_to_finish_on_one_rank(cluster, shared, multihost_run):
    proc, log = _train_on_its_data(cluster, shared, multihost_run, "host-gone", "--set", "training.host_wait_s=20")
    run = RunDir(shared / "host-gone")
    try:
        assert _kill_worker_at_step(cluster, run, proc) > 0
        text = _finish(proc, log)
    finally:
        cluster.start(cluster.hosts[1])
    summary = read_json(run.train_summary)
    events = [e["event"] for e in summary["events"]]
    assert events == ["ranks_lost", "waiting", "continuing_smaller"], text[-3000:]
    assert summary["world_size"] == 1 and summary["global_batch"] == 8
    # No sample repeated or skipped: after each step the data position is the next multiple
    # of the global batch, and the rows served per source equal the uninterrupted run's.
    reference, _ = multihost_run
    final = {r["step"]: r for r in _steps(run)}
    assert [final[k]["samples"] for k in range(1, 13)] == [8 * k for k in range(1, 13)]
    assert summary["data"]["rows_by_source"] == read_json(reference.train_summary)["data"]["rows_by_source"]
    # The same global batch, accumulated on one rank: equal up to float summation order.
    assert [final[k]["loss"] for k in range(1, 13)] == pytest.approx(_losses(reference), rel=1e-5, abs=0)


def test_a_worker_that_cannot_see_the_run_directory_is_named_before_any_work(tmp_path):
    why = unavailable()
    if why:
        pytest.skip(f"multi-host test skipped: {why}")
    runs = tmp_path / "runs"
    runs.mkdir()
    with Cluster(tmp_path / "logs", hide_on_worker=[runs], node_env={"PREFECT_API_AUTH_STRING": AUTH}) as c:
        proc, log = _start(c, runs, "unshared")
        proc.wait(timeout=600)
        text = log.read_text(errors="replace")
    assert proc.returncode != 0
    assert f"node {c.hosts[1].address}" in text and f"cannot see the run directory {runs / 'unshared'}" in text, text[
        -4000:
    ]
    assert "shared filesystem" in text
    run = RunDir(runs / "unshared")
    assert not run.curation_stats.exists() and not (run.curated / "work").exists()

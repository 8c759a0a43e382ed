"""Failures in the middle of curation: a killed Ray worker is retried and the flow completes;
a killed run resumes, skipping finished tasks. Either way the output equals that of an
undisturbed run on the same input. Each run starts a Ray of its own (the test kills it) and
reports to the session's Prefect server."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra.core.storage import read_json
from tests.services import CRUCIBLE, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
FIXTURE = ROOT / "tests" / "fixtures" / "corpus"


def _make_input(dest: Path, files: int = 4, copies: int = 6) -> None:
    """Enough fixture-derived text that each filter task runs for a few seconds."""
    docs = [
        json.loads(line)
        for f in sorted(FIXTURE.glob("*.jsonl"))
        for line in f.open()
        if line.strip().startswith("{") and line.strip().endswith("}")
    ]
    rng = random.Random(0)
    dest.mkdir(parents=True)
    for i in range(files):
        with open(dest / f"part-{i}.jsonl", "w", encoding="utf-8") as f:
            for c in range(copies):
                for d in docs:
                    if "text" not in d:
                        continue
                    words = d["text"].split(" ")
                    for _ in range(len(words) // 10):  # each copy its own edits: not duplicates
                        words[rng.randrange(len(words))] = f"w{rng.randrange(10**6)}"
                    f.write(json.dumps({"id": f"{i}-{c}-{d['id']}", "text": " ".join(words)}) + "\n")


def _curate(runs: Path, run_id: str, input_dir: Path, runtime: list[str]) -> subprocess.Popen:
    """`crucible curate`; `runtime` says which Prefect server (and Ray) it reports to."""
    return subprocess.Popen(  # its own session, so the whole run (driver and Ray) can be killed
        [
            CRUCIBLE,
            "curate",
            "-c",
            "debug",
            "--run-id",
            run_id,
            "--set",
            f"runs_dir={runs}",
            *runtime,
            "--set",
            f"curation.input_path={input_dir}",
            "--set",
            "curation.noise=null",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


def _ray_workers_running(task_name: str, driver: int) -> list[int]:
    """The workers of this run's own Ray (descendants of its driver, `driver`), running the
    task: another test's run may be curating on the same machine."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == driver:
                return True
        return False

    pids = []
    for pid in parent:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(f"ray::{task_name}".encode()) and descends(pid):
                pids.append(pid)
        except OSError:
            continue
    return pids


def _outputs(run: Path) -> tuple[list, list]:
    kept = [
        (r["id"], r["text"])
        for p in sorted((run / "curated").glob("part-*.parquet"))
        for r in pq.read_table(p).to_pylist()
    ]
    removed = sorted(
        (r["id"], r["reason"])
        for p in sorted((run / "curated" / "removed").glob("*.parquet"))
        for r in pq.read_table(p).to_pylist()
    )
    return kept, removed


@pytest.fixture(scope="module")
def setup(tmp_path_factory, e2e):
    """The input, and the undisturbed reference run (on the shared Ray head: nothing is killed
    there); the disturbed runs start a Ray of their own, which the tests kill."""
    tmp = tmp_path_factory.mktemp("curate-failures")
    _make_input(tmp / "input")
    runs = tmp / "runs"
    clean = _curate(runs, "clean", tmp / "input", e2e.runtime_sets())
    out, _ = clean.communicate(timeout=600)
    assert clean.returncode == 0, out[-4000:]
    return tmp / "input", runs, e2e.runtime_sets(ray=False)


def test_killed_worker_is_retried_and_output_matches(setup):
    input_dir, runs, runtime = setup
    proc = _curate(runs, "killed", input_dir, runtime)
    killed = None
    deadline = time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        pids = _ray_workers_running("filter-shard", proc.pid)
        if pids:
            time.sleep(0.5)  # let it get into the shard
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=600)
    assert killed is not None, "no filter-shard worker was seen running: " + out[-2000:]
    assert proc.returncode == 0, out[-4000:]
    _assert_same(runs / "killed", runs / "clean")


def test_killed_run_resumes_skipping_finished_tasks(setup):
    input_dir, runs, runtime = setup
    proc = _curate(runs, "resumed", input_dir, runtime)
    markers = runs / "resumed" / "curated" / "_work" / "markers"
    deadline = time.time() + 300
    while len(list(markers.glob("filter-*.json"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
    proc.communicate(timeout=60)
    finished = len(list(markers.glob("*.json")))
    assert finished >= 2 and not (runs / "resumed" / "curated" / "stats.json").exists()
    again = _curate(runs, "resumed", input_dir, runtime)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-4000:]
    skipped = re.search(r"resuming: (\d+) finished task\(s\) will be skipped", out)
    assert skipped and int(skipped.group(1)) >= finished, out[-3000:]
    _assert_same(runs / "resumed", runs / "clean")


def _assert_same(run: Path, reference: Path) -> None:
    a, b = read_json(run / "curated" / "stats.json"), read_json(reference / "curated" / "stats.json")
    assert a["totals"] == b["totals"] and a["totals"]["docs_in"] > 0
    assert _outputs(run) == _outputs(reference)
    assert not (run / "curated" / "_work").exists()

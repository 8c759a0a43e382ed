"""A Ray worker killed in the middle of a curation step: the flow still completes, and its
output equals that of an undisturbed run on the same input."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra.prefect_server import start_or_reuse
from infra.storage import read_json

pytestmark = pytest.mark.slow
CRUCIBLE = str(Path(sys.executable).parent / "crucible")
ROOT = Path(__file__).resolve().parents[2]
PORT = 4221
FIXTURE = ROOT / "tests" / "fixtures" / "corpus"


def _make_input(dest: Path, files: int = 4, copies: int = 6) -> None:
    """Enough fixture-derived text that each filter task runs for a few seconds."""
    docs = [json.loads(line) for f in sorted(FIXTURE.glob("*.jsonl")) for line in f.open()
            if line.strip().startswith("{") and line.strip().endswith("}")]
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


def _curate(runs: Path, run_id: str, input_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [CRUCIBLE, "curate", "-c", "debug", "--run-id", run_id, "--set", f"runs_dir={runs}",
         "--set", f"runtime.prefect_port={PORT}", "--set", f"curation.input_path={input_dir}",
         "--set", "curation.noise=null"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def _ray_workers_running(task_name: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(f"ray::{task_name}".encode()):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _outputs(run: Path) -> tuple[list, list]:
    kept = [(r["id"], r["text"]) for p in sorted((run / "curated").glob("part-*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    removed = sorted((r["id"], r["reason"]) for p in sorted((run / "curated" / "removed").glob("*.parquet"))
                     for r in pq.read_table(p).to_pylist())
    return kept, removed


def test_killed_worker_is_retried_and_output_matches(tmp_path):
    server = start_or_reuse("127.0.0.1", PORT, tmp_path / "prefect-logs")
    try:
        _make_input(tmp_path / "input")
        runs = tmp_path / "runs"
        proc = _curate(runs, "killed", tmp_path / "input")
        killed = None
        deadline = time.time() + 300
        while killed is None and proc.poll() is None and time.time() < deadline:
            pids = _ray_workers_running("filter-shard")
            if pids:
                time.sleep(0.5)  # let it get into the shard
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=600)
        assert killed is not None, "no filter-shard worker was seen running: " + out[-2000:]
        assert proc.returncode == 0, out[-4000:]

        clean = _curate(runs, "clean", tmp_path / "input")
        out2, _ = clean.communicate(timeout=600)
        assert clean.returncode == 0, out2[-4000:]

        a, b = read_json(runs / "killed" / "curated" / "stats.json"), read_json(runs / "clean" / "curated" / "stats.json")
        assert a["totals"] == b["totals"] and a["totals"]["docs_in"] > 0
        assert _outputs(runs / "killed") == _outputs(runs / "clean")
        assert not (runs / "killed" / "curated" / "_work").exists()
    finally:
        server.stop()

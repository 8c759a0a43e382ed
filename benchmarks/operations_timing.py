"""Operations figures on the debug pipeline, each a ratio or a wait measured in one go:

1. a re-run with nothing changed, as a fraction of the first run's time (goal: under 10%);
2. a re-run with only `evaluation.limit` changed, and which stages it redid (goal: evaluate only);
3. the time from `crucible serve --interval N` to its first scheduled run starting.

Every run uses one Prefect server started here (a `prefect server start` on a database of
its own), as an operator's would be, so the server's start-up is in none of the figures.

Usage: .venv/bin/python benchmarks/operations_timing.py [--interval 20] [--port 4260]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRUCIBLE = str(Path(sys.executable).parent / "crucible")


def _timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([CRUCIBLE, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"crucible {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0, done.stdout + done.stderr


def _first_run_start(api: str, name: str, timeout: float = 300) -> float:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                deployment = client.read_deployment_by_name(f"pipeline/{name}")
            except Exception:  # not registered yet
                time.sleep(0.5)
                continue
            started = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["RUNNING", "COMPLETED", "FAILED"]))
                ),
                sort=FlowRunSort.START_TIME_ASC,
                limit=200,
            )
            if any(r.deployment_id == deployment.id for r in started):
                return time.monotonic()
            time.sleep(0.5)
    raise SystemExit("no scheduled run started")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--interval", type=float, default=20)
    p.add_argument("--port", type=int, default=4260)
    args = p.parse_args()
    from infra.app.prefect_server import start_or_reuse
    from infra.core.storage import read_json

    work = Path(tempfile.mkdtemp(prefix="ops-timing-"))
    os.environ["PREFECT_HOME"] = str(work / "prefect-home")
    server = start_or_reuse("127.0.0.1", args.port, work / "logs")
    common = ["--set", f"runs_dir={work / 'runs'}", "--set", f"runtime.prefect_port={args.port}"]
    try:
        first, _ = _timed(["run", "-c", "debug", "--run-id", "ops", *common])
        again, _ = _timed(["run", "--run-id", "ops", *common])
        before = read_json(work / "runs" / "ops" / "stages.json")
        changed, _ = _timed(["run", "--run-id", "ops", *common, "--set", "evaluation.limit=4"])
        after = read_json(work / "runs" / "ops" / "stages.json")
        redone = [s for s in after if after[s]["at"] != before[s]["at"] or after[s]["key"] != before[s]["key"]]
        print(f"first run of the debug pipeline: {first:.1f} s")
        print(f"re-run, nothing changed: {again:.1f} s = {100 * again / first:.1f}% of the first run (goal < 10%)")
        print(f"re-run, evaluation.limit changed: {changed:.1f} s; stages redone: {', '.join(redone)}")

        # The server is stopped and waited for inside the block: its log can close after.
        with open(work / "serve.log", "wb") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen(
                [CRUCIBLE, "serve", "-c", "debug", "--name", "timing", "--interval", str(args.interval), *common],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                started = _first_run_start(server.api_url, "timing")
                print(
                    f"crucible serve --interval {args.interval:g} -> first scheduled run started: {started - t0:.1f} s"
                )
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=120)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

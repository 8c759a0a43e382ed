"""A small input, whole process: `crucible curate` against datatrove on the same steps.

Each turn is one process timed from outside (subprocess, the interpreter's start included):

- cold: `crucible curate`, nothing running: it starts its Prefect server and a local Ray;
- warm: `crucible curate` joining a Prefect server (`crucible server`) and a Ray head
  (`ray start --head` on loopback) that this script started before the turn, untimed, and
  stops after it (so they take no CPU from the other turns);
- datatrove: a process that runs the datatrove pipeline of benchmarks/curation_throughput.py
  (Gopher filters, four-stage MinHash, PIIFormatter) on the same input and worker count.

The steps and both pipelines are curation_throughput.py's filtered configuration
(`our_config`, `run_datatrove`), imported from it. Turns alternate (the order rotates each
round), `--repeats` rounds; the medians and the ratios datatrove / ours are printed
(>= 1.00: ours is at least as fast), with each turn's start-up line and the machine's load.
Every turn's Prefect server uses a Prefect home of this script's own, made once before the
first turn (as a user's ~/.prefect is, after the first run).

`--before TREE` adds a cold turn of another checkout's code (run the same way: its Ray
workers inherit its PYTHONPATH), e.g. the commit before a change (`git worktree add`).

Usage: .venv/bin/python benchmarks/curation_input.py --mb 5 --noise --out /tmp/cur5n
       flock /tmp/crucible-heavy.lock .venv/bin/python benchmarks/curation_small_input.py --input /tmp/cur5n \
           [--repeats 3] [--workers 2] [--before /tmp/before]
Needs the `bench` extra (datatrove): .venv/bin/pip install -e '.[bench]'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Only the standard library at module level: datatrove's forkserver imports this module
# (as __mp_main__) in its workers, and the datatrove turn must not pay for Crucible's imports.
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# `crucible` of a given checkout (this script's, or --before's): what the console script runs.
CLI = [sys.executable, "-m", "infra.app.cli"]
STARTUP = re.compile(r"^start-up .*$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """Stop a process started in its own session, and what it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _wait(ready, what: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if ready():
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up within {timeout_s:.0f} s; see {log}")


@contextlib.contextmanager
def services(work: Path, env: dict[str, str], cpus: int) -> Iterator[tuple[int, str]]:
    """A `crucible server` and a Ray head on loopback, up for the block: (Prefect port, Ray address)."""
    port, ray_port = free_port(), free_port()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "server.log", "ab") as out:
        server = subprocess.Popen(
            [*CLI, "server", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, cwd=ROOT,
        )  # fmt: skip
    temp = Path(tempfile.mkdtemp(prefix="cs-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    head_cmd = [
        str(BIN / "ray"), "start", "--head", "--block", "--port", str(ray_port), "--node-ip-address", "127.0.0.1",
        "--num-cpus", str(cpus), "--disable-usage-stats", "--include-dashboard", "false",
        "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
        "--temp-dir", str(temp),
    ]  # fmt: skip
    with open(logs / "ray-head.log", "ab") as out:
        head = subprocess.Popen(head_cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"127.0.0.1:{ray_port}"
    try:
        _wait(lambda: _healthy(f"http://127.0.0.1:{port}/api/health"), "crucible server", server, logs / "server.log")
        probe = [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False)", address]

        def joined() -> bool:
            return subprocess.run(probe, capture_output=True, env=env, timeout=120).returncode == 0

        _wait(joined, "the Ray head", head, logs / "ray-head.log")
        time.sleep(3)  # let both settle (first requests, idle workers) before the timed turn
        yield port, address
    finally:
        _stop(head, grace_s=5)  # `ray start --block` may sit on SIGTERM; nothing of it is kept
        _stop(server)
        shutil.rmtree(temp, ignore_errors=True)


def _config(input_dir: Path, work: Path, workers: int) -> Path:
    """curation_throughput.py's filtered configuration as a pipeline config file."""
    import yaml
    from curation_throughput import our_config

    from flows.config import PipelineConfig, RuntimeConfig

    cfg = PipelineConfig(
        runs_dir=str(work / "runs"),
        curation=our_config(input_dir, True),
        runtime=RuntimeConfig(ray_num_cpus=workers),
    )
    path = work / "small-input.yaml"
    # Only what is set: a --before tree may not know keys added since.
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True), sort_keys=False))
    return path


def _prepare_prefect_home(env: dict[str, str], work: Path) -> None:
    """Start and stop a server once on the Prefect home the turns use: its database made and migrated."""
    port = free_port()
    log = work / "logs" / "prefect-home.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        server = subprocess.Popen(
            [*CLI, "server", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, cwd=ROOT,
        )  # fmt: skip
    try:
        _wait(lambda: _healthy(f"http://127.0.0.1:{port}/api/health"), "crucible server", server, log)
    finally:
        _stop(server)


def _ours(kind: str, cfg: Path, run_id: str, env: dict[str, str], sets: list[str], tree: Path = ROOT) -> dict:
    """One `crucible curate` of `tree`'s code (its Ray workers import it too: they inherit PYTHONPATH)."""
    cmd = [*CLI, "curate", "-c", str(cfg), "--run-id", run_id, "--set", f"runtime.prefect_port={free_port()}"]
    env = {**env, "PYTHONPATH": str(tree)}
    began = time.perf_counter()
    done = subprocess.run([*cmd, *sets], capture_output=True, text=True, env=env, cwd=tree)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{kind} turn failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    found = STARTUP.findall(done.stderr)
    return {"wall_s": wall, "startup": found[-1] if found else "(no start-up line)"}


def _datatrove(input_dir: Path, work: Path, workers: int, env: dict[str, str]) -> dict:
    cmd = [sys.executable, __file__, "--datatrove-child", "--input", str(input_dir), "--workers", str(workers),
           "--work", str(work)]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"datatrove turn failed ({done.returncode}):\n{done.stderr[-4000:]}")
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "startup": f"pipeline {inner['wall_s']:.1f} s of it"}


def _datatrove_child(input_dir: Path, work: Path, workers: int) -> None:
    """The datatrove turn's process: curation_throughput.py's pipeline, its own wall as JSON."""
    from curation_throughput import run_datatrove

    r = run_datatrove(input_dir, work, workers, True)
    print(json.dumps({"wall_s": r["wall_s"], "near_dups": len(r["near_dups"])}))


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty.strip() else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, required=True, help="folder of JSONL files (benchmarks/curation_input.py)")
    ap.add_argument("--workers", type=int, default=2, help="Ray CPUs and datatrove workers (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the three turns (default 3)")
    ap.add_argument(
        "--before",
        type=Path,
        metavar="TREE",
        help="also a cold turn of this checkout's code (e.g. `git worktree add /tmp/before HEAD~1`), the same way",
    )
    ap.add_argument("--datatrove-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.datatrove_child:
        return _datatrove_child(args.input, args.work, args.workers)
    input_dir = args.input.resolve()
    mb = sum(p.stat().st_size for p in input_dir.glob("*.jsonl")) / 2**20
    work = Path(tempfile.mkdtemp(prefix="curation-small-"))
    # No server or Ray of the user's is joined by a cold turn; the warm turns' client sends
    # Ray's token, as a client joining a `ray start` head must (docs/operations/clusters.md).
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PREFECT_API_URL")}
    env |= {"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env |= {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    warm_env = {**env, "RAY_AUTH_MODE": "token"}
    loads = [os.getloadavg()[0]]
    turns: dict[str, list[dict]] = {"cold": [], "warm": [], "datatrove": []}
    if args.before:
        turns["before"] = []
    try:
        cfg = _config(input_dir, work, args.workers)
        _prepare_prefect_home(env, work)
        for r in range(args.repeats):
            order = list(turns)[r % len(turns) :] + list(turns)[: r % len(turns)]
            for kind in order:
                time.sleep(2)
                load = os.getloadavg()[0]
                if kind == "cold":
                    t = _ours("cold", cfg, f"cold-{r}", env, [])
                elif kind == "before":
                    t = _ours("before", cfg, f"before-{r}", env, [], args.before.resolve())
                elif kind == "warm":
                    with services(work / f"services-{r}", warm_env, args.workers) as (port, address):
                        load = os.getloadavg()[0]
                        sets = ["--set", f"runtime.prefect_port={port}", "--set", f"runtime.ray_address={address}"]
                        t = _ours("warm", cfg, f"warm-{r}", warm_env, sets)
                else:
                    t = _datatrove(input_dir, work / f"datatrove-{r}", args.workers, env)
                t["load"] = load
                turns[kind].append(t)
                loads.append(load)
                print(f"round {r + 1} {kind:9s} {t['wall_s']:6.1f} s  load {load:.2f}  {t['startup']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {kind: statistics.median(t["wall_s"] for t in ts) for kind, ts in turns.items()}
    print(
        f"\ninput: {input_dir} ({mb:.1f} MB), {args.workers} workers, Gopher filters + MinHash + PII "
        f"(benchmarks/curation_throughput.py's filtered steps); {args.repeats} rounds; {os.cpu_count()} CPUs; "
        f"1-minute load average before the turns {min(loads):.2f} to {max(loads):.2f}; commit {_commit()}"
    )
    for kind, seconds in median.items():
        walls = ", ".join(f"{t['wall_s']:.1f}" for t in turns[kind])
        print(f"{kind:9s} median wall {seconds:6.1f} s  (turns: {walls})")
    for kind in [k for k in turns if k != "datatrove"]:
        ratio = median["datatrove"] / median[kind]
        print(f"ratio datatrove / ours, {kind}: {ratio:.2f}x (>= 1.00: ours at least as fast)")


if __name__ == "__main__":
    main()

"""Where a command's start-up time goes: the line at its end, a running Prefect server and Ray
head joined instead of new ones started, and a server that starts while Ray starts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from infra.app.startup import Clock, begin, take
from tests.services import CRUCIBLE, ROOT, VENV_BIN, free_port


def test_the_line_names_each_part_and_what_is_left():
    clock = Clock(start=100.0)
    clock.add("imports", 2.0)
    clock.add("checks", 0.3)
    clock.add("Ray", 6.0, "started a local instance, 2 CPUs, no dashboard")
    # The server started while Ray started: 5.0 s of its own, 0.2 s of waiting after Ray.
    clock.add("Prefect", 5.0, "started a server on 127.0.0.1:4200, alongside Ray", wall=0.2)
    clock.add("cluster check", 0.01)  # too small to show
    clock.flow_began, clock.flow_s, clock.shutdown_s = 109.0, 4.2, 1.1
    assert clock.line("curate") == (
        "start-up 9.0 s: imports 2.0 s, checks 0.3 s, Ray 6.0 s (started a local instance, 2 CPUs, no dashboard), "
        "Prefect 5.0 s (started a server on 127.0.0.1:4200, alongside Ray), other 0.5 s; curate 4.2 s; shutdown 1.1 s"
    )


def test_a_commands_clock_counts_from_the_process_start_when_the_command_is_the_process():
    age = time.monotonic() - begin(from_process_start=True).start
    assert age > 0.5  # this pytest process started well before this test (its imports, collection)
    assert time.monotonic() - begin(from_process_start=False).start < 0.5  # main(argv) inside a running process
    assert take() is not take()  # taken once; later calls get clocks of their own


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head of this module's own on loopback (`ray start`, its own ports and temp dir, the
    session's token), as a user leaves one running: (address, its session's log folder)."""
    port = free_port()
    temp = Path(f"/tmp/crucible-head-{os.getpid()}")  # short: Ray's socket paths have a length limit
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--port", str(port), "--node-ip-address",
           "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats", "--include-dashboard", "false",
           "--dashboard-agent-listen-port", str(free_port()), "--ray-client-server-port", str(free_port()),
           "--temp-dir", str(temp)]  # fmt: skip
    log = tmp_path_factory.mktemp("head") / "ray-head.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    probe = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print('up')"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            done = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=60)
            if done.stdout.strip().endswith("up"):
                break
            assert time.monotonic() < deadline, f"the Ray head did not answer: {log}"
            time.sleep(1)
        yield address, temp / "session_latest" / "logs"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of it is kept
        proc.wait()
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _jobs(logs: Path) -> set[str]:
    """The Ray jobs whose workers wrote logs on the head (not the workers it starts ahead, ffffffff)."""
    return {m.group(1) for p in logs.glob("worker-*") if (m := re.match(r"worker-\w+-(\w+)-\d+\.", p.name))} - {
        "ffffffff"
    }


def _flow_run(api: str, flow_run_id: str) -> dict:
    with urllib.request.urlopen(f"{api}/flow_runs/{flow_run_id}", timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
@pytest.mark.e2e
def test_curate_joins_a_running_ray_head_and_reports_to_a_running_prefect_server(tmp_path, ray_head, prefect_api):
    address, head_logs = ray_head
    jobs_before = _jobs(head_logs)
    unused = free_port()  # runtime.prefect_port: nothing may start there
    local_ray = tmp_path / "ray-tmp"  # where a local Ray instance of the command would write its session
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "RAY_TMPDIR": str(local_ray), "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [CRUCIBLE, "curate", "-c", "debug", "--run-id", "warm", "--set", f"runs_dir={tmp_path / 'runs'}",
         "--set", f"runtime.prefect_port={unused}", "--set", f"runtime.ray_address={address}",
         "--set", "curation.noise=null", "--set", "curation.quality_classifier.enabled=false"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    # The line, last on stderr, names each part and what it did.
    line = done.stderr.strip().splitlines()[-1]
    port = address.rsplit(":", 1)[1]
    assert re.fullmatch(
        r"start-up [\d.]+ s: imports [\d.]+ s, (checks [\d.]+ s, )?"
        rf"Ray [\d.]+ s \(joined the cluster at [\d.]+:{port}\), "
        rf"Prefect [\d.]+ s \(reused the server at {re.escape(prefect_api)} \(PREFECT_API_URL\)\), .*"
        r"; curate [\d.]+ s; shutdown [\d.]+ s",
        line,
    ), line

    # No Ray of its own: nothing in the temp dir a local instance would use; its tasks ran on the head.
    assert not local_ray.exists() or not any(local_ray.iterdir())
    assert _jobs(head_logs) - jobs_before, "no worker of the command's job ran on the head"
    # No Prefect server of its own: none on runtime.prefect_port, no server log; the flow run is the running one's.
    run = tmp_path / "runs" / "warm"
    assert not list((run / "logs").glob("prefect-server-*.log"))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{unused}/api/health", timeout=2)
    flow_run_id = re.search(r"/flow-run/([0-9a-f-]+)", done.stdout).group(1)
    assert _flow_run(prefect_api, flow_run_id)["state"]["type"] == "COMPLETED"


# In a process of its own: Ray keeps the first instance's auth token for the process's lifetime.
COLD = """
import json, os, sys, time
from pathlib import Path
import ray
from flows.config import RuntimeConfig
from infra.app.prefect_server import healthy
from infra.app.runtime import embedded_runtime
from infra.app.startup import Clock

clock, port, logs = Clock(start=time.monotonic()), int(sys.argv[1]), Path(sys.argv[2])
with embedded_runtime(RuntimeConfig(prefect_port=port, ray_num_cpus=1), logs, True, False, clock) as rt:
    seen = {
        "owns": rt.owns_server, "healthy": healthy(rt.api_url), "api": rt.api_url,
        "worker_api": ray.get(ray.remote(num_cpus=0)(lambda: os.environ.get("PREFECT_API_URL")).remote()),
        "env_vars": ray.get_runtime_context().runtime_env.get("env_vars"),
    }
seen |= {"ray_after": ray.is_initialized(), "healthy_after": healthy(rt.api_url), "notes": clock.notes,
         "parts": clock.parts, "walls": clock.walls}
print(json.dumps(seen))
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_a_cold_runtime_starts_the_prefect_server_while_ray_starts(tmp_path):
    """Nothing running: the server boots beside a local Ray without its dashboard; both stop at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    done = subprocess.run(
        [sys.executable, "-c", COLD, str(port), str(tmp_path)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["owns"] and seen["healthy"]
    assert seen["worker_api"] == seen["api"] and seen["env_vars"] is None  # inherited: no runtime_env locally
    assert not seen["ray_after"] and not seen["healthy_after"]  # both stopped at the end
    assert seen["notes"]["Prefect"] == f"started a server on 127.0.0.1:{port}, alongside Ray"
    assert seen["notes"]["Ray"] == "started a local instance, 1 CPU, no dashboard"
    assert seen["parts"]["Prefect"] > seen["walls"]["Prefect"]  # most of its start-up hid behind Ray's
    assert (tmp_path / f"prefect-server-{port}.log").is_file()

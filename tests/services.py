"""What a test session starts once and all its pytest-xdist workers share: a Prefect server
(on PostgreSQL when the session runs as root, the production set-up), a Ray head that the
end-to-end runs join through `runtime.ray_address`, and the debug pipeline run.

Each is started by the first worker that needs it, under a file lock in the session's shared
folder, and described there in a JSON file that the other workers read. The processes are
stopped by the session's controller once every worker has finished (`stop_all`), so a worker
that finishes early never pulls a server from under another.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CRUCIBLE = str(VENV_BIN / "crucible")
SHARED_ENV = "CRUCIBLE_TEST_SHARED"  # the shared folder, set by the controller for its workers
RECIPE = ROOT / "infra" / "deploy" / "postgres.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_dir() -> Path:
    return Path(os.environ[SHARED_ENV])


def once(name: str, start: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`start()`'s record, made by the first worker to ask and read back by the others."""
    shared = shared_dir()
    record = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not record.exists():
            record.write_text(json.dumps(start()))
    return json.loads(record.read_text())


def _own_process(name: str, proc: subprocess.Popen) -> None:
    """Leave the process (the leader of its own session) for `stop_all` to stop."""
    (shared_dir() / "processes").mkdir(exist_ok=True)
    (shared_dir() / "processes" / f"{name}.pid").write_text(str(proc.pid))


@dataclass(frozen=True)
class Services:
    prefect_port: int
    ray_address: str

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def api(self) -> str:
        return f"{self.ui}/api"

    def runtime_sets(self, ray: bool = True) -> list[str]:
        """`--set` options that point a `crucible` command at the shared server (and Ray head)."""
        sets = ["--set", f"runtime.prefect_port={self.prefect_port}"]
        return [*sets, "--set", f"runtime.ray_address={self.ray_address}"] if ray else sets


def _postgres() -> dict[str, Any]:
    """A database of the session's own, made by infra/deploy/postgres.sh as a user would."""
    from tests.system_packages import missing

    if os.geteuid() != 0:
        return {"why_not": "PostgreSQL needs root to install and administer; the server runs on SQLite"}
    why = missing(["postgresql"], ["pg_lsclusters"])
    if why:
        return {"why_not": why}
    db = f"crucible_ci_{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["bash", str(RECIPE), db, db], capture_output=True, text=True, timeout=900)
    if made.returncode != 0:
        return {"why_not": f"{RECIPE.name} exited {made.returncode}: {made.stderr.strip()[-500:]}"}
    url = re.search(r"PREFECT_SERVER_DATABASE_CONNECTION_URL=(\S+)", made.stdout)
    if url is None:
        return {"why_not": f"{RECIPE.name} printed no connection URL: {made.stdout[-500:]}"}
    (shared_dir() / "postgres-database").write_text(db)  # for stop_all to drop
    return {"database": db, "url": url.group(1)}


def start_prefect() -> dict[str, Any]:
    """A real `prefect server start` (scheduler included) on a database of the session's own,
    so deployments and scheduled runs of earlier sessions cannot fire here."""
    from flows.cluster import scoped_environ
    from infra.app.prefect_server import start_or_reuse

    pg = _postgres()
    port = free_port()
    # The server's home is its own: what the clients' PREFECT_HOME holds (an SQLite database
    # that an in-process Prefect made) says nothing of where the server keeps its data.
    home = shared_dir() / "prefect-server-home"
    server_only = {
        "PREFECT_HOME": str(home),
        **({"PREFECT_SERVER_DATABASE_CONNECTION_URL": pg["url"]} if "url" in pg else {}),
    }
    with scoped_environ(server_only):  # read by the server process only
        server = start_or_reuse("127.0.0.1", port, shared_dir() / "logs", wait_s=180)
    assert server.process is not None, f"port {port} was free a moment ago"
    _own_process("prefect-server", server.process)
    return {"port": port, "home": str(home), **pg}


def start_ray() -> dict[str, Any]:
    """`ray start --head` on loopback, with token auth, ports of its own (a local Ray that a
    test starts keeps the default ones), and four logical CPUs so that two end-to-end runs
    on two xdist workers can each place their two training workers."""
    port, dashboard = free_port(), free_port()
    temp = Path(f"/tmp/crucible-ray-{os.getpid()}")  # short: Ray's socket paths have a length limit
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--port", str(port),
           "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats",
           "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
           "--dashboard-agent-listen-port", str(free_port()), "--ray-client-server-port", str(free_port()),
           "--temp-dir", str(temp)]  # fmt: skip
    log = shared_dir() / "logs" / "ray-head.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _own_process("ray-head", proc)
    address = f"127.0.0.1:{port}"
    probe = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print('up')"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        done = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, env=env,
                              timeout=60)  # fmt: skip
        if done.returncode == 0 and done.stdout.strip().endswith("up"):
            return {"address": address, "temp_dir": str(temp)}
        time.sleep(1)
    raise AssertionError(f"the Ray head did not answer within 120 s; see {log}")


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is left in the process group."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap the leader when it is this process's own child
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop_all(shared: Path) -> None:
    """Stop what the workers started, then drop the session's PostgreSQL database."""
    for pid_file in sorted((shared / "processes").glob("*.pid")):
        # Ray's nodes take half a minute to shut down gracefully, and nothing of them is kept.
        _stop_group(int(pid_file.read_text()), grace_s=0 if pid_file.stem == "ray-head" else 30)
    ray = shared / "ray.json"
    if ray.exists():
        shutil.rmtree(json.loads(ray.read_text())["temp_dir"], ignore_errors=True)
    db_file = shared / "postgres-database"
    if db_file.exists():
        db = db_file.read_text()
        for what in (["dropdb", "--if-exists", db], ["dropuser", "--if-exists", db]):
            subprocess.run(["runuser", "-u", "postgres", "--", *what], capture_output=True, timeout=60)


def snapshot(root: Path) -> dict[str, list[int]]:
    """Size and modification time of every file under `root`: a changed fixture shows here."""
    return {str(p.relative_to(root)): [p.stat().st_size, p.stat().st_mtime_ns] for p in root.rglob("*") if p.is_file()}


# What each stage leaves in a run directory (infra/core/storage.py's RunDir), in stage order.
STAGE_PARTS = {
    "curate": ("curated",),
    "tokenize": ("tokenizer", "shards"),
    "train": ("checkpoints", "metrics.jsonl", "train_events.jsonl", "train_summary.json", "tensorboard",
              "loss_curve.png"),
    "evaluate": ("eval", "report.md"),
}  # fmt: skip


@dataclass(frozen=True)
class PipelineRun:
    """The session's debug run: read it, or start a test from a copy of it, never change it."""

    run: Any  # infra.core.storage.RunDir
    flow_run_id: uuid.UUID

    def copy(self, dest: Path, upto: str = "evaluate") -> Any:
        """A run directory at `dest` holding this run's stages up to `upto`, their outputs and
        stage records: a later `crucible run` there skips them and runs the rest. Its lock,
        logs and Ray Train folder stay behind (they belong to this run's processes)."""
        from infra.core.storage import RunDir, read_json, write_json

        stages = list(STAGE_PARTS)[: list(STAGE_PARTS).index(upto) + 1]
        dest.mkdir(parents=True)
        for stage in stages:
            for part in STAGE_PARTS[stage]:
                src = self.run.root / part
                if src.is_dir():
                    shutil.copytree(src, dest / part)  # copy2: modification times too
                elif src.exists():
                    shutil.copy2(src, dest / part)
        shutil.copy2(self.run.config, dest / "config.yaml")
        records = read_json(self.run.root / "stages.json")
        write_json(dest / "stages.json", {s: records[s] for s in stages})
        return RunDir(dest)

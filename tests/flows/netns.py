"""Hosts for the multi-host tests, made on this one machine from Linux namespaces.

Each host is a network namespace with its own address on a veth pair (iproute2), and its
Ray node runs in a mount namespace of its own whose /tmp/ray is a fresh tmpfs, as on a
separate machine; the rest of the filesystem (the checkout, its virtualenv and the run
directories) is shared, as NFS would share it. `hide` covers folders with an empty tmpfs
on one host, to make a node that does not see the shared storage.

Only addresses assigned inside these namespaces are used, and everything is removed when
the cluster is closed, whatever the test's outcome.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CI runs as root)"
    for tool in ("ip", "unshare", "nsenter", "mount"):
        if not shutil.which(tool):
            return f"needs `{tool}` (Debian's iproute2 and util-linux)"
    probe = f"crprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _sh(*cmd: str) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class Host:
    name: str  # the network namespace
    address: str
    iface: str
    hide: list[Path] = field(default_factory=list)
    proc: subprocess.Popen | None = None  # `ray start --block`, the first process of the host's mount namespace

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]


class Cluster:
    """A head and a worker, each a host with its own address; `ray start` limited to one CPU each."""

    def __init__(self, log_dir: Path, hide_on_worker: list[Path] | None = None, node_env: dict[str, str] | None = None):
        tag = f"{os.getpid() % 1000:03d}{secrets.token_hex(1)}"
        subnet = 1 + int(secrets.token_hex(1), 16) % 250
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.node_env = dict(node_env or {})  # what an operator sets where Ray starts on each node
        self.hosts = [
            Host(f"cr{tag}h{i}", f"10.213.{subnet}.{i + 1}", f"cr{tag}v{i}", list(hide_on_worker or []) if i else [])
            for i in range(2)
        ]
        self._made: list[str] = []

    @property
    def head(self) -> Host:
        return self.hosts[0]

    @property
    def ray_address(self) -> str:
        return f"{self.head.address}:6379"

    def env(self, host: Host) -> dict[str, str]:
        """What every process of a host runs with: Ray's token auth on, gloo on the host's own
        interface (a real host with several interfaces needs the same), no usage reports."""
        return {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "GLOO_SOCKET_IFNAME": host.iface,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
            **self.node_env,
        }

    def __enter__(self) -> Cluster:
        try:
            head, worker = self.hosts
            for host in self.hosts:
                _sh("ip", "netns", "add", host.name)
                self._made.append(host.name)
            # One veth pair, an end in each host: a cable between two machines.
            _sh(
                "ip",
                "link",
                "add",
                head.iface,
                "netns",
                head.name,
                "type",
                "veth",
                "peer",
                "name",
                worker.iface,
                "netns",
                worker.name,
            )
            for host in self.hosts:
                _sh("ip", "-n", host.name, "addr", "add", f"{host.address}/24", "dev", host.iface)
                _sh("ip", "-n", host.name, "link", "set", host.iface, "up")
                _sh("ip", "-n", host.name, "link", "set", "lo", "up")
            for host in self.hosts:
                self.start(host)
            return self
        except BaseException:
            self.close()
            raise

    def start(self, host: Host) -> None:
        """Start (or restart) the host's Ray node, on a fresh /tmp/ray as after a reboot."""
        is_head = host is self.head
        ray = [
            str(VENV_BIN / "ray"),
            "start",
            "--block",
            "--num-cpus",
            "1",
            "--node-ip-address",
            host.address,
            "--disable-usage-stats",
        ]
        ray += (
            ["--head", "--port", "6379", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1"]
            if is_head
            else ["--address", self.ray_address]
        )
        mounts = " && ".join(f"mount -t tmpfs -o size=64m crucible-hidden {p}" for p in host.hide)
        script = (
            "mkdir -p /tmp/ray && mount -t tmpfs -o size=2g crucible-ray /tmp/ray"
            + (f" && {mounts}" if mounts else "")
            + ' && exec "$@"'
        )
        with open(self.log_dir / f"{host.name}-ray.log", "ab") as log:  # the child keeps its own descriptor
            host.proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    host.name,
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    script,
                    "sh",
                    *ray,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(host),
                start_new_session=True,
            )
        self.wait_nodes(len([h for h in self.hosts if h.proc and h.proc.poll() is None]), 120)

    def wait_nodes(self, n: int, timeout: float) -> None:
        """Until the head's GCS lists `n` alive nodes."""
        deadline = time.monotonic() + timeout
        probe = (
            "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(x['Alive'] for x in ray.nodes()))"
        )
        while time.monotonic() < deadline:
            if self.head.proc and self.head.proc.poll() is not None:
                raise RuntimeError(f"the head's `ray start` exited; see {self.log_dir}")
            done = self.run(self.head, [sys.executable, "-c", probe, self.ray_address], timeout=60)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {n} alive node(s) in {timeout:.0f}s; see {self.log_dir}")

    def command(self, host: Host, cmd: list[str], cwd: Path | None = None) -> list[str]:
        """`cmd` inside the host's network and mount namespaces (where its Ray node's sockets are)."""
        assert host.proc is not None
        return ["nsenter", "--target", str(host.proc.pid), "--net", "--mount", f"--wd={cwd or os.getcwd()}", "--", *cmd]

    def run(self, host: Host, cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(host, cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=kw.pop("env", self.env(host)),
            **kw,
        )

    def popen(
        self, host: Host, cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen:
        with open(log, "ab") as out:  # the child keeps its own descriptor
            return subprocess.Popen(
                self.command(host, cmd, cwd),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env(host), **(env or {})},
                start_new_session=True,
            )

    def kill_host(self, host: Host) -> int:
        """SIGKILL every process of the host, as a power cut would; returns how many there were."""
        pids = host.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if host.proc is not None:
            host.proc.wait(timeout=30)
        return len(pids)

    def close(self) -> None:
        for host in self.hosts:
            if host.name in self._made:
                for _ in range(3):  # a dying raylet may still fork a worker once
                    if not host.pids():
                        break
                    self.kill_host(host)
                    time.sleep(0.5)
                subprocess.run(["ip", "netns", "del", host.name], capture_output=True)  # its veth end goes too

    def __exit__(self, *exc) -> None:
        self.close()

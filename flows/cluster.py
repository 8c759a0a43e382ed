"""Connect this process to Ray: join `runtime.ray_address` (or RAY_ADDRESS, which `crucible
serve` sets for the flow runs it starts), or start a local instance on loopback.

The stages' task runners then reuse the connection instead of starting a Ray of their own,
and every Ray worker gets a Prefect API URL it can reach: without one, each worker that
runs a Prefect task would start a temporary server of its own.

On a cluster of several hosts, `check_cluster` runs one probe on every node before any
work starts: a node that cannot see the run directory, or cannot reach the Prefect API,
is named then, rather than failing obscurely in the middle of a stage.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flows.config import RuntimeConfig
from infra.core.node import node_address, node_identity, node_label
from infra.core.storage import write_text

log = logging.getLogger(__name__)

# Offline, Prefect's telemetry calls fail and log errors on every run.
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
_PASSED_ON = (
    "DS_ACCELERATOR",
    "CRUCIBLE_CACHE_DIR",
    "CRUCIBLE_LOG_LEVEL",
    "CRUCIBLE_DRILL_KILL_AT_STEP",
    "CRUCIBLE_DRILL_HOLD_AT_STEP",
    "CRUCIBLE_CHECKPOINT_KEY",  # the key file's path (each node holds the file itself)
)
# Not passed on: PREFECT_API_AUTH_STRING. A job's runtime_env is kept in Ray's GCS, and every
# cluster client reads it back (`ray list jobs --detail`, the dashboard's Jobs page). Workers
# of a local Ray inherit it from this process; on a cluster, each node's environment holds it
# (infra/deploy: a mounted secret), and check_cluster names a node that lacks it.
WILDCARD = ("0.0.0.0", "::")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ClusterCheckFailed(RuntimeError):
    """A node cannot take part: it does not share the run directory or cannot reach Prefect."""


def worker_env(api_url: str | None) -> dict[str, str]:
    env = {**QUIET_ENV, **({"PREFECT_API_URL": api_url} if api_url else {})}
    env.update({k: os.environ[k] for k in _PASSED_ON if k in os.environ})
    return env


def _address_towards(ray_address: str | None) -> str:
    """This machine's address on the route to the Ray head (no packet is sent)."""
    host = (ray_address or "").removeprefix("ray://").rsplit(":", 1)[0]
    if host and host != "auto":
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((host, 9))
                return s.getsockname()[0]
        except OSError:
            pass
    return node_address()


def workers_api_url(api_url: str | None, cfg: RuntimeConfig, ray_address: str | None) -> str | None:
    """The API URL the workers get. A server that listens on every interface is reached by
    this process on 127.0.0.1, which on another node is that node itself: the workers get
    this machine's address instead."""
    if not api_url:
        return api_url
    parts = urlsplit(api_url)
    if ray_address and parts.hostname in LOOPBACK and cfg.prefect_host in WILDCARD and not cfg.prefect_api_url:
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{_address_towards(ray_address)}{port}"))
    return api_url


@dataclass
class Connection:
    """How this process came to be connected to Ray, for the command's start-up line."""

    how: str  # "started" (a local instance) or "joined"
    address: str
    gcs: str  # the GCS address this process is connected to
    seconds: float
    cpus: int | None = None  # runtime.ray_num_cpus of a local instance (None: the machine's)
    dashboard: bool = True


# The connections connect_ray made in this process, the last one last.
_connections: list[Connection] = []


def last_connection() -> Connection | None:
    """The connection connect_ray made last in this process; None before any."""
    return _connections[-1] if _connections else None


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block, then as they were."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def connect_ray(cfg: RuntimeConfig, api_url: str | None, dashboard: bool = True) -> bool:
    """Connect if not connected yet; True when this call started a local Ray instance.

    A local instance's workers inherit the environment its processes start with, which holds
    what `worker_env` gives; no runtime_env is set for them, so the workers Ray starts ahead
    with the instance run the first tasks (a runtime_env would have them wait for new ones).
    `dashboard`: start Ray's dashboard with a local instance (Ray Train reads Ray's state API
    from it); `runtime.ray_dashboard` starts it anyway."""
    import ray

    if ray.is_initialized():
        return False
    began = time.monotonic()
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
    handed = workers_api_url(api_url, cfg, address)
    dashboard = dashboard or cfg.ray_dashboard
    if address is None:
        with scoped_environ(worker_env(handed)):
            ctx = ray.init(
                # "local", not None: with None, Ray joins whatever cluster a `ray start` on this
                # machine left behind (/tmp/ray/ray_current_cluster) instead of starting the instance asked for.
                address="local",
                # On loopback only; the state API it serves is what Ray Train polls.
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                log_to_driver=True,
                num_cpus=cfg.ray_num_cpus,
                _node_ip_address="127.0.0.1",
            )
    else:
        ctx = ray.init(
            address=address,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            runtime_env={"env_vars": worker_env(handed)},
            log_to_driver=True,
        )
    info = ctx.address_info  # type: ignore[attr-defined]  # a RayContext; Ray annotates its base
    at = info["address"]
    made = Connection(
        "joined" if address else "started",
        at,
        info.get("gcs_address", at),
        time.monotonic() - began,
        cfg.ray_num_cpus if address is None else None,
        dashboard if address is None else True,
    )
    _connections.append(made)
    log.info(
        "%s Ray at %s%s",
        made.how,
        at,
        f"; its workers report to Prefect at {handed}" if handed != api_url else "",
    )
    return address is None


def _probe(run_dir: str, token: str, api_url: str | None) -> dict[str, Any]:
    """On one node: can it read the driver's probe file, write one back, reach the API?"""
    me = node_identity()
    problems = []
    probe = Path(run_dir) / f".probe-{token}"
    try:
        if probe.read_text() != token:
            problems.append(f"{run_dir} on this node is another folder than the driver's (not shared storage)")
        else:
            write_text(Path(run_dir) / f".probe-{token}-{me['address']}", token)
    except FileNotFoundError:
        problems.append(
            f"cannot see the run directory {run_dir}: it does not exist on this node, or is "
            f"another folder than the driver's (not shared storage)"
        )
    except OSError as err:
        problems.append(f"cannot read or write the run directory {run_dir}: {err}")
    if api_url:
        request = urllib.request.Request(f"{api_url}/health")
        auth = os.environ.get("PREFECT_API_AUTH_STRING")
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        except urllib.error.HTTPError as err:
            problems.append(
                f"the Prefect API at {api_url} refused this node ({err.code} {err.reason}): set "
                f"PREFECT_API_AUTH_STRING in the environment Ray starts with on every node (Crucible does "
                f"not pass it through Ray, where every cluster client could read it)"
            )
        except (urllib.error.URLError, OSError) as err:
            problems.append(
                f"cannot reach the Prefect API at {api_url} ({err}); bind the server to an address "
                f"the nodes reach (runtime.prefect_host, with PREFECT_SERVER_API_AUTH_STRING)"
            )
    return {"node": me, "problems": problems}


def _answers(nodes: list[dict[str, Any]], refs: list[Any], timeout_s: float) -> list[dict[str, Any]]:
    """Each node's probe result, or the problem that stands for a probe that failed or did not answer."""
    import ray

    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    found = []
    for n, ref in zip(nodes, refs):
        if ref in ready:
            try:
                found.append(ray.get(ref))
                continue
            except Exception as err:  # the probe itself failed there: name the node and why
                problem = f"the probe failed there: {type(err).__name__}: {err}"
        else:
            problem = f"did not answer the probe within {timeout_s:.0f}s"
        found.append(
            {
                "node": {"address": n["NodeManagerAddress"], "hostname": n.get("NodeManagerHostname", "?")},
                "problems": [problem],
            }
        )
    return found


@dataclass
class ClusterCheck:
    """The probes of `start_check`, sent; `result` waits for their answers."""

    run_dir: Path
    token: str
    api_url: str | None
    nodes: list[dict[str, Any]]
    refs: list[Any]
    timeout_s: float
    sent: float

    def result(self) -> list[dict[str, Any]]:
        """Each node's identity; raises ClusterCheckFailed naming each node and what it lacks."""
        if not self.token:
            log.info("cluster check: none needed, the Ray instance is this process's own, on this machine")
            return [node_identity()]
        try:
            left = max(0.0, self.timeout_s - (time.monotonic() - self.sent))
            found = _answers(self.nodes, self.refs, left)
            for f in found:
                echo = self.run_dir / f".probe-{self.token}-{f['node']['address']}"
                if not f["problems"] and not echo.is_file():
                    f["problems"].append(
                        f"its writes to {self.run_dir} do not reach the driver's {self.run_dir} (not shared storage)"
                    )
        finally:
            self.discard()
        bad = [f for f in found if f["problems"]]
        if bad:
            lines = [f"node {node_label(f['node'])}: {p}" for f in bad for p in f["problems"]]
            raise ClusterCheckFailed(
                f"{len(bad)} of the {len(found)} node(s) of the Ray cluster cannot take part in this run:\n  - "
                + "\n  - ".join(lines)
                + "\nEvery node must mount the run directory (runs_dir) and the inputs at the same path: a shared "
                "filesystem such as NFS, Lustre or a cloud file share (docs: operations/clusters.md, 'Shared storage')."
            )
        log.info(
            "cluster check: %d node(s) see %s%s: %s",
            len(found),
            self.run_dir,
            " and reach the Prefect API" if self.api_url else "",
            ", ".join(node_label(f["node"]) for f in found),
        )
        return [f["node"] for f in found]

    def discard(self) -> None:
        """Remove the probe files (result does, or the caller when it gives up waiting)."""
        if not self.token:
            return
        for leftover in self.run_dir.glob(f".probe-{self.token}*"):
            leftover.unlink(missing_ok=True)


def _local_instance() -> bool:
    """Whether this process is connected to the local instance it started (one node: this machine)."""
    import ray

    made = last_connection()
    return made is not None and made.how == "started" and ray.get_runtime_context().gcs_address == made.gcs


def start_check(run_dir: Path, timeout_s: float = 120.0) -> ClusterCheck:
    """Send one probe to every alive node of the connected cluster, before any work starts;
    the caller may do other things (imports) while the nodes' workers start and answer."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    run_dir = Path(run_dir).resolve()
    if _local_instance():
        # This machine is its only node: it sees the run directory and reaches the API the
        # driver has reached. Nothing is sent; result() says so.
        return ClusterCheck(run_dir, "", None, [], [], timeout_s, time.monotonic())
    nodes = [n for n in ray.nodes() if n["Alive"]]
    # A joined cluster's workers get the API's URL in the job's runtime_env; a local instance's
    # inherit it from this process (connect_ray).
    env_vars = ray.get_runtime_context().runtime_env.get("env_vars", {})
    api_url = env_vars.get("PREFECT_API_URL") or os.environ.get("PREFECT_API_URL")
    token = secrets.token_hex(8)
    write_text(run_dir / f".probe-{token}", token)
    check = ClusterCheck(run_dir, token, api_url, nodes, [], timeout_s, time.monotonic())
    # No CPU asked for: a probe must run even on a node whose CPUs are all taken.
    remote = ray.remote(num_cpus=0, max_retries=0)(_probe)
    try:
        check.refs = [
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(run_dir), token, api_url
            )
            for n in nodes
        ]
    except BaseException:
        check.discard()
        raise
    return check


def check_cluster(run_dir: Path, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Probe every alive node of the connected cluster before any work starts; raise
    ClusterCheckFailed naming each node and what it lacks. Returns each node's identity."""
    return start_check(run_dir, timeout_s).result()

"""The embedded runtime: a Prefect API and a Ray instance, started only when needed.

Ray is joined or started by flows/cluster.py, which also runs inside the flow runs that
`crucible serve` starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.cluster import QUIET_ENV, connect_ray
from flows.config import RuntimeConfig
from infra.app.prefect_server import PrefectServer, healthy, launch
from infra.app.startup import Clock

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    api_url: str
    ui_url: str
    ray_address: str
    owns_server: bool  # stopped when the block ends

    def flow_run_url(self, flow_run_id: str) -> str:
        return flow_run_url(self.ui_url, flow_run_id)


def flow_run_url(ui_url: str, flow_run_id: str) -> str:
    return f"{ui_url}/v2/runs/flow-run/{flow_run_id}"  # the V2 UI, Prefect's default since 3.8


def _configured_api() -> tuple[str, str] | None:
    """A Prefect API this user named outside the config: PREFECT_API_URL in the environment
    or the active Prefect profile (`prefect config set PREFECT_API_URL=...`), and its source."""
    from prefect.settings import PREFECT_API_URL

    if url := os.environ.get("PREFECT_API_URL"):
        return url.rstrip("/"), "PREFECT_API_URL"
    if url := PREFECT_API_URL.value():
        return str(url).rstrip("/"), "PREFECT_API_URL of the Prefect profile"
    return None


def _prefect(cfg: RuntimeConfig, log_dir: Path) -> tuple[str, PrefectServer | None, str]:
    """The API this command reports to, the server it launched (not yet answering) or reused
    at runtime.prefect_host:prefect_port, and a note saying which."""
    if cfg.prefect_api_url:
        if not healthy(cfg.prefect_api_url):
            raise RuntimeError(
                f"runtime.prefect_api_url {cfg.prefect_api_url} does not answer; start that "
                f"server or unset the key to use a local one"
            )
        return cfg.prefect_api_url, None, f"reused the server at {cfg.prefect_api_url} (runtime.prefect_api_url)"
    if (named := _configured_api()) is not None:
        url, source = named
        if healthy(url):
            return url, None, f"reused the server at {url} ({source})"
        log.warning("%s %s does not answer; using a local Prefect server instead", source, url)
    server = launch(cfg.prefect_host, cfg.prefect_port, log_dir)
    if server.process is None:
        return server.api_url, server, f"reused the server at {server.api_url}"
    return server.api_url, server, f"started a server on {cfg.prefect_host}:{cfg.prefect_port}"


class _Waiting(threading.Thread):
    """Waits, beside the main thread, for a Prefect server this command launched to answer."""

    def __init__(self, server: PrefectServer, wait_s: float) -> None:
        super().__init__(name="prefect-server-start", daemon=True)
        self.server, self.wait_s = server, wait_s
        self.error: BaseException | None = None
        self.launched = time.monotonic()
        self.ready_s: float | None = None

    def run(self) -> None:
        try:
            self.server.wait_ready(self.wait_s)
            self.ready_s = time.monotonic() - self.launched
        except BaseException as err:  # handed to the main thread by result()
            self.error = err

    def result(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _ray_note(was_connected: bool, start_ray: bool) -> str:
    from flows import cluster

    if was_connected:
        return "this process was already connected"
    if not start_ray:
        return "connected by the flow when a stage needs it"
    c = cluster.last_connection()
    if c is None:
        return ""
    if c.how == "joined":
        return f"joined the cluster at {c.address}"
    cpus = f", {c.cpus} CPU{'s' if c.cpus != 1 else ''}" if c.cpus else ""
    return f"started a local instance{cpus}" + ("" if c.dashboard else ", no dashboard")


@contextlib.contextmanager
def embedded_runtime(
    cfg: RuntimeConfig,
    log_dir: Path,
    start_ray: bool = True,
    ray_dashboard: bool = True,
    clock: Clock | None = None,
) -> Iterator[Runtime]:
    """Start (or join) Prefect and Ray for the duration of the block; stop only what was started.
    With start_ray=False, Ray is left to the pipeline flow, which connects only when a stage
    has work to do (an unchanged re-run then starts no Ray at all). A Prefect server this
    starts boots while Ray starts. `ray_dashboard`: with a local Ray, start its dashboard
    (what Ray Train needs). `clock` is told how long each took."""
    clock = clock or Clock()
    with clock.part("imports"):
        # Imported here: both are slow to import and the CLI's --help should not pay for them.
        import ray
        from prefect.settings import PREFECT_API_URL, temporary_settings

    server: PrefectServer | None = None
    saved_env = {k: os.environ.get(k) for k in ("PREFECT_API_URL", *QUIET_ENV)}
    was_connected = ray.is_initialized()
    stack = contextlib.ExitStack()
    try:
        began = time.monotonic()
        api_url, server, prefect_note = _prefect(cfg, log_dir)
        waiting = _Waiting(server, 90.0) if server is not None and server.process is not None else None
        if waiting is not None:
            waiting.start()
        launched_s = time.monotonic() - began
        # Subprocesses read the environment; this process's Prefect settings were fixed at import.
        os.environ.update({"PREFECT_API_URL": api_url, **QUIET_ENV})
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))

        if was_connected:
            log.info("reusing the Ray instance this process is already connected to")
        elif start_ray:
            # A server named by URL is handed to the workers as it is (workers_api_url).
            named = server is None and not cfg.prefect_api_url
            ray_cfg = cfg.model_copy(update={"prefect_api_url": api_url}) if named else cfg
            with clock.part("Ray"):
                connect_ray(ray_cfg, api_url, dashboard=ray_dashboard)
        clock.note("Ray", _ray_note(was_connected, start_ray))
        began = time.monotonic()
        if waiting is not None:
            waiting.result()
        waited_s = time.monotonic() - began
        if waiting is not None and "Ray" in clock.parts:
            prefect_note += ", alongside Ray"
        own_s = launched_s + (waiting.ready_s if waiting is not None and waiting.ready_s is not None else waited_s)
        clock.add("Prefect", own_s, prefect_note, wall=launched_s + waited_s)
        address = ray.get_runtime_context().gcs_address if ray.is_initialized() else ""
        yield Runtime(
            api_url=api_url,
            ui_url=api_url.removesuffix("/api"),
            ray_address=address,
            owns_server=server is not None and server.process is not None,
        )
    finally:
        with clock.shutdown():
            stack.close()
            if ray.is_initialized() and not was_connected:
                ray.shutdown()  # stops the local instance this block (or its flow) started; leaves a cluster
            if server is not None:
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=5)  # send buffered flow logs before the server goes away
                server.stop()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

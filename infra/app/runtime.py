"""The embedded runtime: a Prefect API and a Ray instance, started only when needed.

Ray is joined or started by flows/cluster.py, which also runs inside the flow runs that
`crucible serve` starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.cluster import QUIET_ENV, connect_ray
from flows.config import RuntimeConfig
from infra.app.prefect_server import PrefectServer, healthy, start_or_reuse

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


@contextlib.contextmanager
def embedded_runtime(cfg: RuntimeConfig, log_dir: Path, start_ray: bool = True) -> Iterator[Runtime]:
    """Start (or join) Prefect and Ray for the duration of the block; stop only what was started.
    With start_ray=False, Ray is left to the pipeline flow, which connects only when a stage
    has work to do (an unchanged re-run then starts no Ray at all)."""
    # Imported here: both are slow to import and the CLI's --help should not pay for them.
    import ray
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server: PrefectServer | None = None
    saved_env = {k: os.environ.get(k) for k in ("PREFECT_API_URL", *QUIET_ENV)}
    was_connected = ray.is_initialized()
    stack = contextlib.ExitStack()
    try:
        if cfg.prefect_api_url:
            if not healthy(cfg.prefect_api_url):
                raise RuntimeError(
                    f"runtime.prefect_api_url {cfg.prefect_api_url} does not answer; start that "
                    f"server or unset the key to use a local one"
                )
            api_url = cfg.prefect_api_url
        else:
            server = start_or_reuse(cfg.prefect_host, cfg.prefect_port, log_dir)
            api_url = server.api_url
        # Subprocesses read the environment; this process's Prefect settings were fixed at import.
        os.environ.update({"PREFECT_API_URL": api_url, **QUIET_ENV})
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))

        if was_connected:
            log.info("reusing the Ray instance this process is already connected to")
        elif start_ray:
            connect_ray(cfg, api_url)
        address = ray.get_runtime_context().gcs_address if ray.is_initialized() else ""
        yield Runtime(
            api_url=api_url,
            ui_url=api_url.removesuffix("/api"),
            ray_address=address,
            owns_server=server is not None and server.process is not None,
        )
    finally:
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

"""The embedded runtime: a Prefect API and a Ray instance, started only when needed.

Ray workers get the same Prefect API URL as the driver; without it every worker that runs
a Prefect task would start a temporary server of its own.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from flows.config import RuntimeConfig
from infra.app.prefect_server import QUIET_ENV, PrefectServer, healthy, start_or_reuse

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    api_url: str
    ui_url: str
    ray_address: str

    def flow_run_url(self, flow_run_id: str) -> str:
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"


def _worker_env(api_url: str) -> dict[str, str]:
    env = {"PREFECT_API_URL": api_url, **QUIET_ENV}
    for key in ("DS_ACCELERATOR", "CRUCIBLE_CACHE_DIR", "CRUCIBLE_LOG_LEVEL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


@contextlib.contextmanager
def embedded_runtime(cfg: RuntimeConfig, log_dir: Path) -> Iterator[Runtime]:
    """Start (or join) Prefect and Ray for the duration of the block; stop only what was started."""
    # Imported here: both are slow to import and the CLI's --help should not pay for them.
    import ray
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server: PrefectServer | None = None
    saved_env = {k: os.environ.get(k) for k in ("PREFECT_API_URL", *QUIET_ENV)}
    started_ray = False
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

        if ray.is_initialized():
            log.info("reusing the Ray instance this process is already connected to")
        else:
            started_ray = cfg.ray_address is None
            local = {"num_cpus": cfg.ray_num_cpus, "_node_ip_address": "127.0.0.1"} if started_ray else {}
            ctx = ray.init(
                address=cfg.ray_address,
                # The dashboard serves Ray's state API, which Ray Train polls; on loopback only.
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                runtime_env={"env_vars": _worker_env(api_url)},
                log_to_driver=True,
                **local,
            )
            log.info("%s Ray at %s", "started" if started_ray else "joined", ctx.address_info["address"])
        address = ray.get_runtime_context().gcs_address
        yield Runtime(api_url=api_url, ui_url=api_url.removesuffix("/api"), ray_address=address)
    finally:
        stack.close()
        if started_ray:
            ray.shutdown()
        if server is not None:
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)  # send buffered flow logs before the server goes away
            server.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

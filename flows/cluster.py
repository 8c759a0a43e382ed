"""Connect this process to Ray: join `runtime.ray_address` (or RAY_ADDRESS, which `crucible
serve` sets for the flow runs it starts), or start a local instance on loopback.

The stages' task runners then reuse the connection instead of starting a Ray of their own,
and every Ray worker gets the driver's Prefect API URL: without it, each worker that runs
a Prefect task would start a temporary server of its own.
"""
from __future__ import annotations

import logging
import os

from flows.config import RuntimeConfig

log = logging.getLogger(__name__)

# Offline, Prefect's telemetry calls fail and log errors on every run.
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
_PASSED_ON = ("DS_ACCELERATOR", "CRUCIBLE_CACHE_DIR", "CRUCIBLE_LOG_LEVEL", "CRUCIBLE_DRILL_KILL_AT_STEP",
              "PREFECT_API_AUTH_STRING")


def worker_env(api_url: str | None) -> dict[str, str]:
    env = {**QUIET_ENV, **({"PREFECT_API_URL": api_url} if api_url else {})}
    env.update({k: os.environ[k] for k in _PASSED_ON if k in os.environ})
    return env


def connect_ray(cfg: RuntimeConfig, api_url: str | None) -> bool:
    """Connect if not connected yet; True when this call started a local Ray instance."""
    import ray

    if ray.is_initialized():
        return False
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
    local = {"num_cpus": cfg.ray_num_cpus, "_node_ip_address": "127.0.0.1"} if address is None else {}
    ctx = ray.init(
        address=address,
        # The dashboard serves Ray's state API, which Ray Train polls; on loopback only.
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        runtime_env={"env_vars": worker_env(api_url)},
        log_to_driver=True,
        **local,
    )
    log.info("%s Ray at %s", "joined" if address else "started", ctx.address_info["address"])
    return address is None

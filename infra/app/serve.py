"""`crucible serve`: the pipeline as a Prefect deployment, run on a schedule or on demand.

This process holds the Prefect server (or joins `runtime.prefect_api_url`) and a Ray
instance, and runs the deployment's flow runs as its subprocesses; they join this Ray
through RAY_ADDRESS. Each flow run writes a run directory of its own, named after the
deployment and the flow run, so two runs never share one; a retried flow run (the UI's
Retry button, `prefect flow-run retry`, `crucible resume`) finds its directory again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from flows.config import PipelineConfig

log = logging.getLogger(__name__)


def _drop_stale_scheduled_runs(name: str) -> None:
    """Delete the not-yet-started runs an earlier `crucible serve` of this deployment left:
    they carry that serve's parameters, not the ones given now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"pipeline/{name}")
        except ObjectNotFound:
            return
        stale = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["SCHEDULED"]))),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
        for fr in stale:
            client.delete_flow_run(fr.id)
        if stale:
            log.info("deleted %d scheduled run(s) of pipeline/%s left by an earlier serve", len(stale), name)


def serve_command(
    cfg: PipelineConfig,
    name: str,
    cron: str | None,
    interval: float | None,
    limit: int,
    allow_any_run_dir: bool = False,
) -> int:
    from flows.pipeline import RUNS_ROOT_ENV, pipeline_flow
    from infra.app.crashed import mark_crashed_runs
    from infra.app.runtime import embedded_runtime

    if cfg.run_id:
        raise ValueError("a served pipeline names a run directory per flow run; drop run_id (--run-id) from its config")
    runs = Path(cfg.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    if not allow_any_run_dir:  # a run started from the UI or API writes under runs_dir only
        os.environ[RUNS_ROOT_ENV] = str(runs.resolve())
    with embedded_runtime(cfg.runtime, runs / "_serve" / "logs") as rt:
        os.environ["RAY_ADDRESS"] = rt.ray_address  # the flow runs started below join this Ray
        mark_crashed_runs(runs)
        _drop_stale_scheduled_runs(name)
        when = f"cron '{cron}'" if cron else f"every {interval:g} s" if interval else "on demand only"
        print(
            f"serving deployment pipeline/{name} ({when}); Prefect UI: {rt.ui_url}/v2/deployments; "
            f"started {dt.datetime.now().isoformat(timespec='seconds')}",
            flush=True,
        )
        pipeline_flow.serve(
            # Paused on shutdown: a schedule nobody serves would pile up runs that start, all at
            # once, with stale parameters when serving resumes.
            name=name,
            cron=cron,
            interval=interval,
            limit=limit,
            pause_on_shutdown=True,
            parameters={"cfg": cfg.model_dump(mode="json"), "run_dir": None},
            description="curate -> tokenize -> train -> evaluate; retries continue from the last checkpoint",
        )
    return 0

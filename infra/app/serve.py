"""`crucible serve`: the pipeline as a Prefect deployment, run on a schedule or on demand.

This process holds the Prefect server (or joins `runtime.prefect_api_url`) and a Ray
instance, and runs the deployment's flow runs as its subprocesses; they join this Ray
through RAY_ADDRESS. Each flow run writes a run directory of its own, named after the
deployment and the flow run, so two runs never share one; a retried flow run (the UI's
Retry button, `prefect flow-run retry`, `crucible resume`) finds its directory again.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from flows.config import PipelineConfig


def serve_command(cfg: PipelineConfig, name: str, cron: str | None, interval: float | None, limit: int) -> int:
    from flows.pipeline import pipeline_flow
    from infra.app.crashed import mark_crashed_runs
    from infra.app.runtime import embedded_runtime

    if cfg.run_id:
        raise ValueError("a served pipeline names a run directory per flow run; drop run_id (--run-id) from "
                         "its config")
    runs = Path(cfg.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    with embedded_runtime(cfg.runtime, runs / "_serve" / "logs") as rt:
        os.environ["RAY_ADDRESS"] = rt.ray_address  # the flow runs started below join this Ray
        mark_crashed_runs(runs)
        when = f"cron '{cron}'" if cron else f"every {interval:g} s" if interval else "on demand only"
        print(f"serving deployment pipeline/{name} ({when}); Prefect UI: {rt.ui_url}/v2/deployments; "
              f"started {dt.datetime.now().isoformat(timespec='seconds')}", flush=True)
        pipeline_flow.serve(
            name=name, cron=cron, interval=interval, limit=limit, pause_on_shutdown=False,
            parameters={"cfg": cfg.model_dump(mode="json"), "run_dir": None},
            description="curate -> tokenize -> train -> evaluate; retries continue from the last checkpoint",
        )
    return 0

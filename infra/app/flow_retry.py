"""`crucible resume RUN`: continue a failed, crashed or interrupted pipeline run.

The run's own flow run is retried in this process (the same id, so the UI shows one flow
run per pipeline run), as `prefect flow-run retry` does; stages whose key is unchanged are
skipped and training continues from its newest valid checkpoint. If the Prefect server
no longer knows that flow run, a new one runs on the same run directory.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from flows.config import PipelineConfig
from flows.run_lock import check_free, lock_path, read_holder
from infra.app.config import ConfigError, load_config
from infra.core.storage import RunDir

log = logging.getLogger(__name__)
TERMINAL = ("FAILED", "CRASHED", "CANCELLED", "COMPLETED")


def resolve_run(target: str, runs_dir: str | None, overrides: list[str]) -> tuple[PipelineConfig, RunDir]:
    """A run directory (a path, or a run id under runs_dir) and the config it was started with."""
    path = Path(target)
    if not (path / "config.yaml").is_file():
        path = Path(runs_dir or load_config("demo").runs_dir) / target
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"no run {target}: neither {target} nor {path} holds a config.yaml; pass a run "
            f"directory or the id of a run under runs_dir (--runs-dir)"
        )
    run = RunDir(path.resolve())
    cfg = load_config(str(run.config), [*overrides, f"runs_dir={run.root.parent}"], run.root.name)
    return cfg, run


def retried_flow_run(run: RunDir) -> Any:
    """The run's last flow run, set to Pending so that this process runs it again; None when
    the server does not know it. Refuses a flow run that is still going. Pending, not
    Scheduled as `prefect flow-run retry` sets: a `crucible serve` runner would pick up a
    Scheduled run of its deployment and run it a second time."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Pending

    flow_run_id = read_holder(lock_path(run)).get("flow_run_id")
    if not flow_run_id:
        return None
    with get_client(sync_client=True) as client:
        try:
            fr = client.read_flow_run(uuid.UUID(flow_run_id))
        except ObjectNotFound:
            log.info("the Prefect server does not know flow run %s; resuming in a new flow run", flow_run_id)
            return None
        state = fr.state.type.value if fr.state else "UNKNOWN"
        if state not in TERMINAL:
            raise ConfigError(
                f"flow run {flow_run_id} of run {run.root.name} is {state}, not finished; wait for "
                f"it, or cancel it in the UI first"
            )
        client.set_flow_run_state(fr.id, Pending(message="Retried by crucible resume"), force=True)
        return client.read_flow_run(fr.id)


def trust_checkpoints(folders: list[Path]) -> None:
    """Accept checkpoints written with another key (--trust-checkpoint), before anything loads them."""
    if folders:
        from tasks.training.checkpoint_key import trust

        for folder in folders:
            print(trust(folder), flush=True)


def resume_command(target: str, runs_dir: str | None, overrides: list[str], trusted: list[Path] | None = None) -> int:
    from infra.app.execute import execute, preflight
    from tasks.scaling.records import GRID

    cfg, run = resolve_run(target, runs_dir, overrides)
    check_free(run)  # a run still being written needs no resume
    trust_checkpoints(trusted or [])
    command = "sweep" if (run.root / GRID).is_dir() else "run"  # a sweep's run directory goes on as a sweep
    preflight(command, cfg, run)
    return execute(command, cfg, run, flow_run=retried_flow_run)

"""Mark Crashed the flow runs whose process died, found at the next start.

A SIGKILLed `crucible run` cannot report its end, so Prefect keeps showing its flow run
(and the stage running then) as Running forever. Each run directory's lock file names the
flow run that last held it (flows/run_lock.py); a lock nobody holds any more, on this host,
whose flow run Prefect still shows as running, belongs to a process that is gone.
"""

from __future__ import annotations

import logging
import socket
import uuid
from pathlib import Path

from flows.run_lock import is_held, read_holder

log = logging.getLogger(__name__)


def _running(flow_run) -> bool:
    return flow_run.state is not None and flow_run.state.type.value in ("RUNNING", "PENDING")


def mark_crashed_runs(runs_dir: Path) -> list[str]:
    """Set Crashed on those flow runs (and their running subflows); returns their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    marked: list[str] = []
    locks = sorted(Path(runs_dir).glob("*/run.lock"))
    if not locks:
        return marked
    with get_client(sync_client=True) as client:
        for lock in locks:
            holder = read_holder(lock)
            if not holder.get("flow_run_id") or holder.get("host") != socket.gethostname() or is_held(lock.parent):
                continue
            try:
                parent = client.read_flow_run(uuid.UUID(holder["flow_run_id"]))
            except (ObjectNotFound, ValueError):
                continue  # another Prefect server's run, or one it no longer has
            if not _running(parent):
                continue
            # limit and sort explicitly: this client sends nulls for them otherwise, which the server rejects.
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])),
                limit=200,
                sort=FlowRunSort.START_TIME_ASC,
            )
            for fr in [parent, *children]:
                if _running(fr):
                    message = (
                        f"its process (pid {holder.get('pid')} on {holder.get('host')}) ended without "
                        f"reporting; found at the next start. `crucible resume {lock.parent.name}` "
                        f"continues it from its newest valid checkpoint"
                    )
                    client.set_flow_run_state(fr.id, Crashed(message=message), force=True)
                    marked.append(str(fr.id))
            log.warning(
                "flow run %s of run %s was still shown as running although its process is gone: marked Crashed",
                parent.id,
                lock.parent.name,
            )
    return marked

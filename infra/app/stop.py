"""How a running `crucible` command stops when asked: SIGTERM, or Cancel in the Prefect UI.

Schedulers, container runtimes and Prefect's own cancellation send SIGTERM and, after a grace
period, SIGKILL. Killed, a run loses the steps since its last checkpoint and may leave Ray
workers behind. Asked to stop, the command instead:

1. writes the run's stop request (`RunDir.stop_request`), which the training ranks read at
   each step boundary: they finish the step, save a checkpoint and stop (tasks/training/loop.py);
2. gives them `training.stop_grace_s` to do so, then interrupts the flow anyway (a stage other
   than training is interrupted at once: its finished tasks are kept by their markers);
3. once the flow has ended, marks its flow run Cancelled with the command that resumes it,
   stops the local Ray and Prefect it started (embedded_runtime), and exits.

Cancel in the UI moves a flow run to Cancelling; a flow that runs inside this command (not
under a worker) is not stopped by Prefect itself, so a thread watches the flow run's state.

A flow run under a Prefect runner (`crucible serve`, a work pool's worker) is stopped by the
runner instead: flows/stopping.py.
"""

from __future__ import annotations

import _thread
import json
import logging
import signal
import threading
import time
import uuid
from typing import Any

from flows.stopping import COMMAND_STOPS, running_stage, swap_prefects_handler
from infra.core.storage import RunDir, write_text

log = logging.getLogger(__name__)

WATCH_EVERY_S = 2.0


class Stopper:
    """Within the block: SIGTERM, or Cancel of `flow_run_id`, asks the run to stop."""

    def __init__(self, run: RunDir, grace_s: float, api_url: str | None) -> None:
        self.run = run
        self.grace_s = grace_s
        self.api_url = api_url
        self.flow_run_id: uuid.UUID | None = None
        self.reason: str | None = None  # "SIGTERM" or "Cancel in the Prefect UI", once asked
        self.interrupted = False
        self._done = threading.Event()
        self._old_handler: Any = None
        self._timer: threading.Timer | None = None
        self._prefect_handler: Any = None

    def __enter__(self) -> Stopper:
        COMMAND_STOPS.set()  # the pipeline flow, run inside this command, leaves SIGTERM to this
        self.run.stop_request.unlink(missing_ok=True)  # an earlier command's, handled or not
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._take_prefects_sigterm()
        if self.api_url:
            threading.Thread(target=self._watch, name="crucible-cancel-watch", daemon=True).start()
        return self

    def _take_prefects_sigterm(self) -> None:
        """While a flow runs, Prefect's engine installs a SIGTERM handler of its own that raises
        TerminationSignal wherever the main thread is (inside Ray's wait for the ranks), so the
        run crashes before any checkpoint. The engine installs whatever function its module
        holds under that name: ours, while this block lasts, asks for the graceful stop."""
        self._prefect_handler = swap_prefects_handler(self._on_sigterm)

    def __exit__(self, *exc: object) -> None:
        COMMAND_STOPS.clear()
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
        swap_prefects_handler(self._prefect_handler)
        self.run.stop_request.unlink(missing_ok=True)

    def _on_sigterm(self, *_: Any) -> None:
        self.request("SIGTERM")

    def request(self, reason: str) -> None:
        """Ask the run to stop (once): a checkpoint first if training, within the grace period."""
        if self.reason is not None:
            return
        self.reason = reason
        training = running_stage(self.run) == "train"
        write_text(self.run.stop_request, json.dumps({"reason": reason, "at": time.time()}) + "\n")
        if training:
            log.warning(
                "%s: the ranks save a checkpoint at the end of this step and stop (at most %.0f s)",
                reason,
                self.grace_s,
            )
            self._timer = threading.Timer(self.grace_s, self._interrupt)
            self._timer.daemon = True
            self._timer.start()
        else:
            log.warning("%s: stopping; finished tasks are kept and a resume skips them", reason)
            self._interrupt()

    def _interrupt(self) -> None:
        if not self._done.is_set():
            self.interrupted = True
            _thread.interrupt_main()  # a KeyboardInterrupt in the flow, as Ctrl-C gives

    def _watch(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        while not self._done.wait(WATCH_EVERY_S):
            if self.flow_run_id is None or self.reason is not None:
                continue
            try:
                with temporary_settings(updates={PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as c:
                    state = c.read_flow_run(self.flow_run_id).state
            except Exception as exc:  # the server may be restarting: look again later
                log.debug("cannot read flow run %s: %s", self.flow_run_id, exc)
                continue
            if state is not None and state.type.value in ("CANCELLING", "CANCELLED"):
                self.request("Cancel in the Prefect UI")

    def cancelled_message(self) -> str:
        step = _last_checkpoint_step(self.run)
        saved = f"the newest checkpoint is step {step}" if step is not None else "no checkpoint was saved yet"
        return f"stopped by {self.reason}; {saved}; continue it with: crucible resume {self.run.root}"


def _last_checkpoint_step(run: RunDir) -> int | None:
    from tasks.training.checkpoint_store import published_steps

    steps = published_steps(run.checkpoints) if run.checkpoints.is_dir() else []
    return steps[0][0] if steps else None


def mark_cancelled(api_url: str, flow_run_id: uuid.UUID, message: str) -> None:
    """Record the flow run as Cancelled (the UI's word for a run stopped on purpose)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelled

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)

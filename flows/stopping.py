"""How a flow run stops on SIGTERM when a Prefect runner runs it (`crucible serve`, a work
pool's worker): Cancel in the UI, like a SIGTERM sent to the runner's child, reaches the flow
run's process as SIGTERM, and the runner sends SIGKILL 30 s later. Prefect's engine would
end the flow at once, so training would lose every step since its last checkpoint.

Here, while training runs, the SIGTERM writes the run's stop request instead: the ranks
finish their step, save a checkpoint and stop (tasks/training/loop.py), and then, or after
`training.stop_grace_s` at the latest, the signal is handed to Prefect's engine, which ends
the flow run (Cancelled, when the UI asked). A `crucible` command that runs the flow in its
own process does the same with its Stopper (infra/app/stop.py) and sets COMMAND_STOPS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from infra.core.storage import RunDir, write_text

log = logging.getLogger(__name__)

COMMAND_STOPS = threading.Event()  # set while a `crucible` command's own Stopper handles SIGTERM
RUNNER_KILLS_AFTER_S = 30.0  # Prefect's runner: SIGKILL this long after its SIGTERM
PREFECT_HANDLER = "_prefect_sigterm_handler"  # prefect.utilities.engine's SIGTERM bridge (Prefect 3.8)


def swap_prefects_handler(handler: Any) -> Any:
    """Make `handler` the function Prefect's engine installs for SIGTERM; return the one it held
    (None if Prefect has none). Each flow engine, subflows included, (re)installs the function
    this name holds when a flow starts: replacing the process's handler alone lasts only until
    the next subflow (the training stage is one)."""
    import prefect.utilities.engine as engine

    held = vars(engine).get(PREFECT_HANDLER)
    if held is not None and handler is not None:
        vars(engine)[PREFECT_HANDLER] = handler
    return held


def running_stage(run: RunDir) -> str | None:
    from flows.stages import recorded

    return next((s for s, rec in recorded(run).items() if rec.get("status") == "running"), None)


@contextlib.contextmanager
def stop_before_prefect(run: RunDir, grace_s: float) -> Iterator[None]:
    """Within the block, a SIGTERM during training asks the ranks to save a checkpoint and stop,
    then goes to Prefect's handler once they have (the stage fails with StopRequested) or
    after `grace_s`. Outside training it goes to Prefect's handler at once."""
    if COMMAND_STOPS.is_set() or threading.current_thread() is not threading.main_thread():
        yield
        return
    run.stop_request.unlink(missing_ok=True)  # one a killed run left: it would stop this one at once
    # The runner SIGKILLs 30 s after its SIGTERM: the ranks must have saved and stopped before.
    grace_s = min(grace_s, RUNNER_KILLS_AFTER_S - 5)
    prefects = signal.getsignal(signal.SIGTERM)
    asked, forward = threading.Event(), threading.Event()
    timers: list[threading.Timer] = []

    def deliver(signum: int, frame: Any) -> None:
        if callable(prefects):
            prefects(signum, frame)
        else:  # no handler of Prefect's (the default action, or ignored)
            signal.signal(signal.SIGTERM, prefects)
            os.kill(os.getpid(), signum)

    def hand_back() -> None:
        forward.set()
        os.kill(os.getpid(), signal.SIGTERM)  # handlers run in the main thread, whichever thread sends

    def on_sigterm(signum: int, frame: Any) -> None:
        if forward.is_set():
            deliver(signum, frame)
            return
        if asked.is_set():
            return
        asked.set()
        if running_stage(run) != "train":
            forward.set()
            deliver(signum, frame)
            return
        write_text(run.stop_request, json.dumps({"reason": "SIGTERM", "at": time.time()}) + "\n")
        log.warning("SIGTERM: the ranks save a checkpoint at the end of this step and stop (at most %.0f s)", grace_s)
        timer = threading.Timer(grace_s, hand_back)
        timer.daemon = True
        timers.append(timer)
        timer.start()

    signal.signal(signal.SIGTERM, on_sigterm)
    held = swap_prefects_handler(on_sigterm)
    try:
        yield
    except Exception:
        if timers and not forward.is_set():  # training stopped as asked: Prefect ends the run now
            timers[0].cancel()
            hand_back()
        raise
    finally:
        try:  # Prefect's handler back first, so a SIGTERM from here on is Prefect's to handle
            swap_prefects_handler(held)
            signal.signal(signal.SIGTERM, prefects)
        finally:
            for timer in timers:
                timer.cancel()
            run.stop_request.unlink(missing_ok=True)

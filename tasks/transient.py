"""Which failures are worth retrying: a lost Ray worker or node, a dropped connection, a
timed-out server. Not a user's error (bad config or input), which fails the same way again,
and not an unknown bug: retrying everything hides defects and burns hours of compute.

Prefect calls `retry_transient` as a task's `retry_condition_fn`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, PermissionError, NotImplementedError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it, and what a Ray error wraps, once each."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [
            e.__cause__,
            e.__context__,
            getattr(e, "cause", None),
            # Ray Train's errors hold the workers' and the controller's failures.
            getattr(e, "health_check_failure", None),
            getattr(e, "controller_failure", None),
            *(getattr(e, "worker_failures", None) or {}).values(),
        ]


def _transient_types() -> tuple[type[BaseException], ...]:
    import httpx
    import ray.exceptions as rex
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError, WorkerHealthCheckTimeoutError

    return (
        ConnectionError,
        TimeoutError,
        httpx.TransportError,
        rex.RayActorError,
        rex.WorkerCrashedError,
        rex.NodeDiedError,
        rex.ObjectLostError,
        rex.RaySystemError,
        rex.GetTimeoutError,
        WorkerHealthCheckFailedError,
        WorkerHealthCheckTimeoutError,
    )  # a dead or hung worker


def is_transient(exc: BaseException) -> bool:
    chain = [e for e in _chain(exc) if isinstance(e, BaseException)]
    if any(isinstance(e, USER_ERRORS) for e in chain):
        return False
    transient = _transient_types()
    return any(isinstance(e, transient) for e in chain)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except BaseException as exc:  # the failure being judged; a retry or not is the only outcome
        return is_transient(exc)
    return False

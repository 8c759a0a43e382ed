"""Only transient failures are retried: lost workers and connections, not user errors or bugs."""

from __future__ import annotations

import httpx
import ray.exceptions as rex
from prefect.states import Completed, Failed

from tasks.curation.reader import InputError
from tasks.training.checks import TrainingConfigError
from tasks.transient import is_transient, retry_transient


def _wrapped(inner: BaseException, outer: type[BaseException] = RuntimeError) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer("training failed") from exc
    except BaseException as exc:
        return exc


def test_lost_workers_and_connections_are_transient():
    assert is_transient(rex.WorkerCrashedError())
    assert is_transient(rex.NodeDiedError("node gone"))
    assert is_transient(ConnectionError("reset"))
    assert is_transient(httpx.ReadTimeout("server timed out"))
    assert is_transient(_wrapped(rex.WorkerCrashedError()))  # e.g. Ray Train's TrainingFailedError


def test_a_worker_lost_under_ray_train_is_transient_and_its_own_error_is_not():
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    died = WorkerHealthCheckFailedError("A worker health check failed.", rex.ActorDiedError())
    assert is_transient(WorkerGroupError("rank 0 died", {0: died}))
    assert not is_transient(WorkerGroupError("rank 1 failed", {1: TrainingConfigError("bad batch")}))
    assert not is_transient(WorkerGroupError("rank 0 diverged", {0: RuntimeError("loss is NaN")}))


def test_user_errors_and_unknown_bugs_are_not():
    assert not is_transient(TrainingConfigError("global batch 9 does not divide"))
    assert not is_transient(InputError("bad record"))
    assert not is_transient(FileNotFoundError("no shards"))
    assert not is_transient(RuntimeError("a bug"))
    # A user error wins over the connection error it caused.
    assert not is_transient(_wrapped(ValueError("bad"), ConnectionError))


def test_the_prefect_retry_condition_judges_the_failed_state():
    assert retry_transient(None, None, Failed(data=rex.WorkerCrashedError()))
    assert not retry_transient(None, None, Failed(data=ValueError("bad")))
    assert not retry_transient(None, None, Completed(data=1))


def test_every_stage_task_retries_only_transient_failures():
    from tasks.curation.prefect_tasks import filter_task
    from tasks.evaluation.prefect_tasks import evaluate_unit_task
    from tasks.tokenization.prefect_tasks import tokenize_shard_task
    from tasks.training.prefect_tasks import train_task

    for t in (filter_task, tokenize_shard_task, evaluate_unit_task, train_task.with_options(retries=1)):
        assert t.retries >= 1 and t.retry_condition_fn is retry_transient, t.name

"""Training's step records as MLflow metrics: keys as metrics.jsonl has them, `eval/<task>/<metric>`
included, sent in requests MLflow accepts (at most 1000 metrics each), a record never split."""

from __future__ import annotations

from mlflow.utils.validation import _validate_metric_name

from tasks.tracking.metric_logger import METRICS_PER_REQUEST, _metrics, _requests


def _record(step: int, evals: int) -> dict:
    base = {"step": step, "loss": 1.0, "lr": 1e-3, "grad_norm": None, "skipped_steps": 0, "ok": True}
    return {**base, **{f"eval/task{i}/acc": 0.5 for i in range(evals)}}


def test_eval_keys_are_metrics_mlflow_accepts_as_they_are():
    metrics = _metrics([(123, _record(7, 2))])
    assert {m.key for m in metrics} == {"loss", "lr", "skipped_steps", "eval/task0/acc", "eval/task1/acc"}
    assert {m.step for m in metrics} == {7} and {m.timestamp for m in metrics} == {123}
    for m in metrics:
        _validate_metric_name(m.key)  # raises on a name MLflow refuses


def test_requests_stay_under_mlflows_limit_and_keep_each_record_whole():
    batch = [(0, _record(step, evals=40)) for step in range(1, 51)]  # 50 records x 43 metrics
    requests = _requests(batch)
    assert len(requests) > 1 and all(len(_metrics(r)) <= METRICS_PER_REQUEST for r in requests)
    assert [item for r in requests for item in r] == batch  # in order, none lost, none split
    assert _requests([]) == [] and _requests(batch[:2]) == [batch[:2]]

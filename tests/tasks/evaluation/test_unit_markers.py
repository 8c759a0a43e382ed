"""A retried evaluation stage reuses the (task, formulation) units that finished before."""

from __future__ import annotations

from tasks.evaluation import prefect_tasks
from tasks.evaluation.config import EvaluationConfig
from tasks.evaluation.harness import TaskRun


def test_a_finished_unit_is_read_back_not_recomputed(tmp_path, monkeypatch):
    calls = []

    def fake(model_path, run, cfg):
        calls.append(run.task)
        return {"task": run.task, "formulation": run.formulation, "acc": 0.25 * len(calls), "items": [{"i": 1}]}

    monkeypatch.setattr(prefect_tasks, "evaluate_unit", fake)
    unit, cfg = TaskRun("arc_easy", "cloze", 0, 8), EvaluationConfig()
    marker = tmp_path / "units" / "arc_easy-cloze.json"
    first = prefect_tasks.evaluate_unit_task.fn("model", unit, cfg, str(marker))
    again = prefect_tasks.evaluate_unit_task.fn("model", unit, cfg, str(marker))
    assert calls == ["arc_easy"] and again == first and marker.is_file()
    prefect_tasks.evaluate_unit_task.fn("model", unit, cfg)  # without a marker: always computed
    assert calls == ["arc_easy", "arc_easy"]

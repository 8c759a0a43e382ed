"""Benchmark files: missing or malformed ones fail with the file, the line and the fix."""

from __future__ import annotations

import json
import re
import sys
import types

import pytest

from tasks.evaluation import data
from tasks.evaluation.benchmarks import ARC_FIELDS
from tasks.evaluation.data import DATASETS, BenchmarkDataError, hub_command, iter_jsonl, load_split

ARC = {"question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}


def test_a_local_split_is_read_in_file_order(eval_root):
    recs = load_split("arc_easy", "train", eval_root, allow_hub=False, required=ARC_FIELDS)
    assert [r["id"] for r in recs] == ["arc-10", "arc-11", "arc-12", "arc-13"]


def test_a_missing_split_names_the_file_and_the_command_that_makes_it(eval_root):
    missing = eval_root / "arc_easy" / "validation.jsonl"
    with pytest.raises(BenchmarkDataError) as err:
        load_split("arc_easy", "validation", eval_root, allow_hub=False, required=ARC_FIELDS)
    msg = str(err.value)
    assert f"benchmark file {missing} not found" in msg
    assert "evaluation.allow_hub is false" in msg
    assert (f"load_dataset('allenai/ai2_arc', 'ARC-Easy', split='validation').to_json({str(missing)!r})") in msg
    with pytest.raises(BenchmarkDataError, match=re.escape("<benchmarks_dir>/hellaswag/train.jsonl")):
        load_split("hellaswag", "train", None, allow_hub=False, required=())


def test_hub_command_leaves_out_an_absent_configuration(tmp_path):
    assert hub_command(DATASETS["hellaswag"], "validation", tmp_path / "v.jsonl") == (
        "python -c \"from datasets import load_dataset; load_dataset('Rowan/hellaswag', "
        f"split='validation').to_json({str(tmp_path / 'v.jsonl')!r})\""
    )


def test_a_bad_json_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "arc_easy" / "test.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(ARC) + "\n\n{not json\n")
    with pytest.raises(BenchmarkDataError, match=re.escape(f"{path}, line 3: not valid JSON")):
        load_split("arc_easy", "test", tmp_path, allow_hub=False, required=ARC_FIELDS)
    path.write_text(json.dumps(ARC) + "\n[1, 2]\n")
    with pytest.raises(BenchmarkDataError, match=re.escape(f"{path}, line 2: expected a JSON object, got list")):
        list(iter_jsonl(path))


def test_a_record_missing_a_field_names_the_field(tmp_path):
    path = tmp_path / "arc_easy" / "test.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(ARC) + "\n" + json.dumps({k: v for k, v in ARC.items() if k != "answerKey"}) + "\n")
    with pytest.raises(
        BenchmarkDataError,
        match=re.escape(
            f"{path}, line 2: missing field(s) answerKey; expected the Hugging Face allenai/ai2_arc schema"
        ),
    ):
        load_split("arc_easy", "test", tmp_path, allow_hub=False, required=ARC_FIELDS)


def fake_datasets(load_dataset):
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    return module


def test_the_hub_is_asked_only_when_allowed_and_its_failure_is_reported(monkeypatch, tmp_path):
    calls = []

    def load_dataset(path, name, split):
        calls.append((path, name, split))
        return [ARC]

    monkeypatch.setattr(data, "hub_unreachable", lambda: None)  # as on a machine with network
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(load_dataset))
    assert load_split("arc_easy", "validation", tmp_path, allow_hub=True, required=ARC_FIELDS) == [ARC]
    assert calls == [("allenai/ai2_arc", "ARC-Easy", "validation")]

    def offline(path, name, split):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(offline))
    with pytest.raises(
        BenchmarkDataError,
        match=r"Loading allenai/ai2_arc from the hub failed too "
        r"\(ConnectionError: no network\)\. Set evaluation.benchmarks_dir",
    ):
        load_split("arc_easy", "validation", tmp_path, allow_hub=True, required=ARC_FIELDS)


def test_an_unreachable_hub_is_not_asked_at_all(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(lambda *a: calls.append(a) or [ARC]))
    data.hub_unreachable.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchmarkDataError, match=r"The hub was not tried: HF_HUB_OFFLINE is set\."):
        load_split("arc_easy", "validation", tmp_path, allow_hub=True, required=ARC_FIELDS)
    data.hub_unreachable.cache_clear()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(
        BenchmarkDataError, match=r"not tried: 127\.0\.0\.1 is not reachable \(ConnectionRefusedError\)"
    ):
        load_split("arc_easy", "validation", tmp_path, allow_hub=True, required=ARC_FIELDS)
    data.hub_unreachable.cache_clear()
    assert calls == []


def test_an_empty_split_is_an_error_not_a_missing_row(tmp_path):
    from tasks.evaluation.harness import TaskRun, load_docs

    (tmp_path / "arc_easy").mkdir()
    (tmp_path / "arc_easy" / "test.jsonl").write_text("\n")
    with pytest.raises(BenchmarkDataError, match="arc_easy: the arc_easy test split holds no items"):
        load_docs(TaskRun("arc_easy"), tmp_path, allow_hub=False)

"""A served deployment writes only under its runs folder: a flow run's parameters (run_dir,
cfg.runs_dir), which anyone reaching the Prefect API can edit, cannot name another folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.config import PipelineConfig
from flows.pipeline import RUNS_ROOT_ENV, _run_dir, confine


def test_without_a_confining_root_any_folder_is_taken(tmp_path, monkeypatch):
    monkeypatch.delenv(RUNS_ROOT_ENV, raising=False)
    assert confine(tmp_path / "x" / ".." / "y", "run_dir") == (tmp_path / "y").resolve()


def test_a_confined_deployment_refuses_folders_outside_its_runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv(RUNS_ROOT_ENV, str(runs))
    assert _run_dir(PipelineConfig(), str(runs / "a")).root == (runs / "a").resolve()
    for outside in (tmp_path / "elsewhere", runs / ".." / "escape", Path("/etc")):
        with pytest.raises(ValueError, match=rf"outside {runs}.*--allow-any-run-dir"):
            _run_dir(PipelineConfig(), str(outside))
    (tmp_path / "target").mkdir()
    (runs / "link").symlink_to(tmp_path / "target")  # a link out of the folder is outside too
    with pytest.raises(ValueError, match="outside"):
        _run_dir(PipelineConfig(), str(runs / "link"))
    with pytest.raises(ValueError, match="outside"):
        _run_dir(PipelineConfig(run_id="r1", runs_dir=str(tmp_path / "other")), None)
    assert _run_dir(PipelineConfig(run_id="r1", runs_dir=str(runs)), None).root == (runs / "r1").resolve()

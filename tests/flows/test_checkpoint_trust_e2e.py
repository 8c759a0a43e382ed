"""`crucible resume` on a run whose checkpoints another installation wrote (signed with
another key, as a planted or copied-in run directory would be) refuses before anything loads
them, naming --trust-checkpoint; the run's own checkpoints resume as before (the resume and
exact-resume tests throughout use them)."""

from __future__ import annotations

import pytest

from infra.core.storage import read_json, write_json
from tasks.training import checkpoint_key as ck
from tasks.training import checkpoint_store as store
from tests.flows.e2e_env import crucible

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_resume_refuses_checkpoints_signed_with_another_key(pipeline_run, e2e, tmp_path, monkeypatch):
    run = pipeline_run.copy(tmp_path / "runs" / "foreign", upto="train")
    stages = read_json(run.root / "stages.json")
    stages["train"]["status"] = "running"  # as a run killed during training leaves it
    write_json(run.root / "stages.json", stages)
    (run.checkpoints / "final").rename(tmp_path / "final-aside")
    published = [folder for _, folder in store.published_steps(run.checkpoints)]
    assert published
    with monkeypatch.context() as other:  # re-signed by another installation
        other.setenv(ck.KEY_ENV, str(tmp_path / "another-installation.key"))
        for folder in published:
            write_json(folder / store.MANIFEST, ck.sign(read_json(folder / store.MANIFEST)))
    before = {p: p.stat().st_mtime_ns for p in run.root.rglob("*") if p.is_file()}
    result = crucible("resume", str(run.root), *e2e.runtime_sets())
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "signed with another key" in result.stderr and f"--trust-checkpoint {published[0]}" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.stat().st_mtime_ns for p in run.root.rglob("*") if p.is_file()} == before  # nothing touched

"""Checkpoint manifests are signed with a key kept outside the run directory; a checkpoint
unsigned, signed with another key, or changed after signing is refused until trusted."""

from __future__ import annotations

import stat
import threading

import pytest

from infra.core.storage import read_json, write_json
from tasks.training import checkpoint_key as ck
from tasks.training import checkpoint_store as store


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "crucible" / "checkpoint.key"
    monkeypatch.setenv(ck.KEY_ENV, str(path))
    return path


def _checkpoint(root, step=4):
    folder = root / store.tag_for(step)
    folder.mkdir(parents=True)
    (folder / "mp_rank_00_model_states.pt").write_bytes(b"pickled weights")
    store.write_manifest(folder, step, 1, store.hash_files(folder, ["mp_rank_00_model_states.pt"]), {"val_loss": 2.5})
    return folder


def test_the_key_is_made_once_private_and_outside_the_run(key_file, tmp_path):
    assert not key_file.exists()
    folder = _checkpoint(tmp_path / "run" / "checkpoints")
    assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not str(key_file).startswith(str(tmp_path / "run"))
    first = key_file.read_text()
    _checkpoint(tmp_path / "run" / "checkpoints", step=8)
    assert key_file.read_text() == first  # reused, not replaced
    assert ck.signature_problem(read_json(folder / store.MANIFEST), folder) is None


def test_ranks_making_the_key_at_once_agree_on_one(key_file):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(ck.load_key(create=True))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and sorted(p.name for p in key_file.parent.iterdir()) == ["checkpoint.key"]


def test_another_keys_unsigned_or_altered_checkpoints_are_refused_naming_the_fix(key_file, tmp_path, monkeypatch):
    theirs = tmp_path / "their-key"
    monkeypatch.setenv(ck.KEY_ENV, str(theirs))
    foreign = _checkpoint(tmp_path / "elsewhere")  # written by another installation
    monkeypatch.setenv(ck.KEY_ENV, str(key_file))
    ck.load_key(create=True)
    why = ck.signature_problem(read_json(foreign / store.MANIFEST), foreign)
    assert "signed with another key" in why and f"--trust-checkpoint {foreign}" in why
    unsigned = read_json(foreign / store.MANIFEST)
    del unsigned[ck.SIGNATURE]
    assert "is unsigned" in ck.signature_problem(unsigned, foreign)
    mine = _checkpoint(tmp_path / "mine")
    altered = read_json(mine / store.MANIFEST)
    altered["files"]["mp_rank_00_model_states.pt"]["sha256"] = "0" * 64  # to match planted files
    assert "changed after it was signed" in ck.signature_problem(altered, mine)


def test_trust_re_signs_a_whole_checkpoint_and_refuses_a_damaged_one(key_file, tmp_path, monkeypatch):
    monkeypatch.setenv(ck.KEY_ENV, str(tmp_path / "their-key"))
    foreign = _checkpoint(tmp_path / "elsewhere")
    monkeypatch.setenv(ck.KEY_ENV, str(key_file))
    assert "trusted checkpoint" in ck.trust(foreign)
    assert ck.signature_problem(read_json(foreign / store.MANIFEST), foreign) is None
    assert "already signed" in ck.trust(foreign)
    (foreign / "mp_rank_00_model_states.pt").write_bytes(b"planted code!!!")  # same size, other bytes
    manifest = read_json(foreign / store.MANIFEST)
    del manifest[ck.SIGNATURE]
    write_json(foreign / store.MANIFEST, manifest)
    with pytest.raises(ValueError, match="SHA-256 differs"):
        ck.trust(foreign)
    with pytest.raises(ValueError, match="--trust-checkpoint takes a checkpoint folder"):
        ck.trust(tmp_path)


def test_resume_refuses_an_untrusted_checkpoint_before_loading_anything(key_file, tmp_path, monkeypatch):
    from infra.core.storage import RunDir
    from models.config import ModelConfig
    from tasks.training.checks import TrainingConfigError
    from tasks.training.config import TrainingConfig
    from tasks.training.resumable_changes import check_resumable

    run = RunDir(tmp_path / "run")
    monkeypatch.setenv(ck.KEY_ENV, str(tmp_path / "their-key"))
    _checkpoint(run.checkpoints, step=6)
    monkeypatch.setenv(ck.KEY_ENV, str(key_file))
    with pytest.raises(TrainingConfigError, match=r"signed with another key.*--trust-checkpoint"):
        check_resumable(run, TrainingConfig(), ModelConfig(), None)

"""Publishing and retention of checkpoint folders, without training: folders and manifests
made by hand, as a run leaves them."""

from __future__ import annotations

import math

import pytest

from infra.core.storage import write_json
from tasks.training import checkpoint_store as store
from tests.syscall_log import record_fsyncs_and_renames


def _checkpoint(root, step, val_loss=None):
    folder = root / store.tag_for(step)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"w" * step)
    store.write_manifest(folder, step, 1, store.hash_files(folder, ["model.pt"]), {"val_loss": val_loss})
    return folder


def test_a_nan_validation_loss_is_never_the_best(tmp_path):
    # The newest evaluation diverged: min() starting from its NaN kept NaN, and step 3 was deleted.
    for step, loss in ((3, 2.0), (6, 2.5), (9, 3.0), (12, math.nan)):
        _checkpoint(tmp_path, step, loss)
    removed = store.retain(tmp_path, keep_last=1, keep_best=True, current=12)
    assert sorted(p.name for p in tmp_path.glob("step*")) == ["step12", "step3"]  # 2.0 is the best
    assert sorted(removed) == ["step6", "step9"]


def test_infinite_or_missing_losses_are_skipped_too(tmp_path):
    for step, loss in ((3, 4.0), (6, None), (9, 5.0), (12, math.inf)):
        _checkpoint(tmp_path, step, loss)
    store.retain(tmp_path, keep_last=1, keep_best=True, current=12)
    assert sorted(p.name for p in tmp_path.glob("step*")) == ["step12", "step3"]


def test_a_linked_step_folder_is_not_a_checkpoint_and_its_target_survives(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    target = _checkpoint(elsewhere, 4)
    root = tmp_path / "checkpoints"
    _checkpoint(root, 6)
    _checkpoint(root, 8)
    (root / "step4").symlink_to(target)
    assert [n for n, _ in store.published_steps(root)] == [8, 6]
    store.retain(root, keep_last=1, keep_best=False, current=8)
    assert (target / "model.pt").is_file() and (target / store.MANIFEST).is_file()
    store.discard(root / "step4")  # asked directly: the link goes, the folder it names stays
    assert not (root / "step4").exists() and (target / "model.pt").is_file()


def test_publish_puts_every_file_on_disk_before_the_rename(tmp_path, monkeypatch):
    tmp = tmp_path / store.tmp_tag_for(5)
    (tmp / "zero").mkdir(parents=True)
    (tmp / "zero" / "optim.pt").write_bytes(b"o")
    write_json(tmp / store.MANIFEST, {"step": 5})
    events = record_fsyncs_and_renames(monkeypatch)
    store.publish(tmp_path, 5)
    at = events.index(("rename", str(tmp_path / "step5")))
    synced = {path for kind, path in events[:at] if kind == "fsync"}
    assert {str(tmp / "zero" / "optim.pt"), str(tmp / "zero"), str(tmp / store.MANIFEST), str(tmp)} <= synced
    assert ("fsync", str(tmp_path)) in events[at:]  # the rename itself, before `latest` names it
    assert (tmp_path / "latest").read_text() == "step5"


@pytest.mark.parametrize("keep_last", [1, 2])
def test_retention_keeps_the_newest(tmp_path, keep_last):
    for step in (2, 4, 6):
        _checkpoint(tmp_path, step, 1.0)
    store.retain(tmp_path, keep_last=keep_last, keep_best=False, current=6)
    assert [n for n, _ in store.published_steps(tmp_path)] == [6, 4][:keep_last]

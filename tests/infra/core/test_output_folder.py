"""`--out` folders: replaced only when empty, absent, an earlier write of ours, or forced;
never when they hold the current directory or the home folder."""

from __future__ import annotations

import pytest

from infra.core.output_folder import OutputFolderRefused, claim, mark, replace_folder

MARK = ".crucible-test"


def test_absent_empty_and_marked_folders_may_be_written(tmp_path):
    claim(tmp_path / "new", MARK, "thing")
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty", MARK, "thing")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "weights").write_text("x")
    mark(tmp_path / "ours", MARK, by="test")
    claim(tmp_path / "ours", MARK, "thing")


def test_a_foreign_folder_is_refused_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderRefused, match=r"not empty and was not written by Crucible.*--force"):
        claim(tmp_path, MARK, "thing")
    mark(tmp_path, ".another-commands-marker")  # another command's folder is foreign too
    with pytest.raises(OutputFolderRefused, match="not written by Crucible"):
        claim(tmp_path, MARK, "thing")
    claim(tmp_path, MARK, "thing", force=True)
    f = tmp_path / "notes.txt"
    with pytest.raises(OutputFolderRefused, match="is a file"):
        claim(f, MARK, "thing", force=True)


def test_the_current_directory_and_home_are_never_replaced(tmp_path, monkeypatch):
    work = tmp_path / "project" / "src"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for dest in (work, work.parent, tmp_path):
        mark(dest, MARK)  # even marked, even forced
        with pytest.raises(OutputFolderRefused, match="it holds"):
            claim(dest, MARK, "thing", force=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir("/")
    with pytest.raises(OutputFolderRefused, match="it holds"):
        claim(tmp_path / "home", MARK, "thing", force=True)


def test_replace_folder_swaps_whole_folders(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("old")
    new = tmp_path / "staging"
    new.mkdir()
    (new / "new").write_text("new")
    replace_folder(new, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it

from pathlib import Path

import pytest

from infra.core.storage import atomic_path, read_json, write_json
from tests.syscall_log import record_fsyncs_and_renames


def test_atomic_write_replaces_whole_file(tmp_path):
    dest = tmp_path / "sub" / "out.json"
    write_json(dest, {"a": 1})
    write_json(dest, {"a": 2})
    assert read_json(dest) == {"a": 2}
    assert [p.name for p in dest.parent.iterdir()] == ["out.json"]


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    dest = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_a_write_is_on_disk_before_its_name_and_the_name_after(tmp_path, monkeypatch):
    calls = record_fsyncs_and_renames(monkeypatch)
    write_json(tmp_path / "stages.json", {"a": 1})
    (fsync_tmp, renamed, fsync_dir) = calls
    assert fsync_tmp[0] == "fsync" and fsync_tmp[1].startswith(str(tmp_path / ".stages.json."))
    assert renamed == ("rename", str(tmp_path / "stages.json"))
    assert fsync_dir == ("fsync", str(tmp_path))


def test_an_unreadable_marker_counts_as_absent(tmp_path, caplog):
    from infra.core.task_markers import once, read_marker

    marker = tmp_path / "task.json"
    marker.write_text("")  # what a power loss leaves of an un-fsynced write
    assert read_marker(marker) is None
    assert "unreadable" in caplog.text
    assert once(marker, lambda: {"rows": 3})["rows"] == 3  # redone, not fatal
    assert read_marker(marker)["rows"] == 3
    marker.write_text("[1, 2]")  # valid JSON, not a result
    assert read_marker(marker) is None


def test_an_unreadable_fingerprint_discards_the_partial_work(tmp_path):
    from infra.core.task_markers import prepare_work

    work = tmp_path / "work"
    work.mkdir()
    (work / "fingerprint.json").write_text("")
    (work / "part-0.bin").write_text("made from who knows what")
    prepare_work(work, {"inputs": [1]}, work / "markers")
    assert read_json(work / "fingerprint.json") == {"inputs": [1]} and not (work / "part-0.bin").exists()


def test_a_killed_discard_never_leaves_markers_without_their_outputs(tmp_path, monkeypatch):
    import shutil

    from infra.core import task_markers

    work = tmp_path / "_work"
    (work / "markers").mkdir(parents=True)
    for i in range(5):
        (work / f"filtered-{i}.parquet").write_text("rows")
        (work / "markers" / f"filter-{i}.json").write_text('{"kept": 1}')
    write_json(work / "fingerprint.json", {"inputs": [1]})
    real = shutil.rmtree

    def killed_midway(path, *args, **kwargs):  # deletes the shards, then the process dies
        for f in sorted(Path(path).glob("filtered-*")):
            f.unlink()
        raise KeyboardInterrupt("killed while deleting")

    monkeypatch.setattr(task_markers.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        task_markers.discard_work(work)
    monkeypatch.setattr(task_markers.shutil, "rmtree", real)
    assert not work.exists()  # no marker is left where a re-run would trust it
    task_markers.prepare_work(work, {"inputs": [1]}, work / "markers")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_work"]  # the half-deleted copy is gone
    assert task_markers.read_marker(work / "markers" / "filter-0.json") is None


def test_text_that_is_not_utf8_is_named_by_file_line_and_byte_with_or_without_a_bom(tmp_path):
    from infra.core.storage import read_utf8

    sheet = tmp_path / "s.csv"
    for bom in (b"", b"\xef\xbb\xbf"):
        sheet.write_bytes(bom + b"id,a\n\xe9x,1\n")
        with pytest.raises(ValueError, match=rf"{sheet}, line 2: not UTF-8 text \(byte 0xe9\); save it"):
            read_utf8(sheet, "save it", "utf-8-sig")

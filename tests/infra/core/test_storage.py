import pytest

from infra.core.storage import atomic_path, read_json, write_json


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

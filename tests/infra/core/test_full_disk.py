"""A full disk, for real: a few-hundred-KB tmpfs mounted by the test (root; skipped with the
reason otherwise). Each writer that publishes a stage's output (a task marker, a curated
shard, a token shard, a checkpoint manifest) fails with ENOSPC, leaves
nothing under the final name and no temporary file behind, and the stage's error says that
the disk is full and how to continue."""

from __future__ import annotations

import errno
import os

import numpy as np
import pyarrow as pa
import pytest

from infra.core.storage import RunDir, write_bytes, write_json
from tasks.curation.output_files import CURATED_SCHEMA, RowSink
from tasks.tokenization.shards import write_table
from tasks.training.checkpoint_store import write_manifest
from tests.tmpfs import small_tmpfs

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        yield disk


def _enospc(exc: pytest.ExceptionInfo) -> None:
    assert isinstance(exc.value, OSError) and exc.value.errno == errno.ENOSPC


def test_each_publishing_writer_leaves_nothing_on_a_full_disk(small_disk):
    with pytest.raises(OSError) as exc:
        write_bytes(small_disk / "markers" / "task.json", b"x" * 400_000)
    _enospc(exc)
    with (
        pytest.raises(OSError) as exc,
        RowSink(small_disk / "part-00000.parquet", CURATED_SCHEMA, group_rows=50) as sink,
    ):
        for i in range(5000):
            sink.add({"id": str(i), "text": os.urandom(200).hex(), "source": "web", "metadata": "{}"})
    _enospc(exc)
    tokens = pa.table({"tokens": pa.array(np.random.default_rng(0).integers(0, 60000, 300_000, dtype=np.uint16))})
    with pytest.raises(OSError) as exc:
        write_table(tokens, small_disk / "shards" / "part-00000.arrow", {"split": "train"})
    _enospc(exc)
    files = {f"file-{i:05d}.pt": {"bytes": i, "sha256": "0" * 64} for i in range(5000)}  # ~500 KB of JSON
    (small_disk / "tmp-step6").mkdir()
    with pytest.raises(OSError) as exc:
        write_manifest(small_disk / "tmp-step6", 6, 1, files, {})
    _enospc(exc)
    (small_disk / "tmp-step6").rmdir()  # empty: the manifest left nothing behind either
    left = sorted(str(p.relative_to(small_disk)) for p in small_disk.rglob("*") if p.is_file())
    assert left == []  # no final name, no temporary file: a resume finds nothing to trust
    stat = os.statvfs(small_disk)
    assert stat.f_bfree == stat.f_blocks, (stat.f_bfree, stat.f_blocks)  # and no space still held
    write_json(small_disk / "after.json", {"ok": True})  # the space is back: writes work again


def test_a_stage_failed_by_a_full_disk_says_so_and_how_to_continue(small_disk):
    from flows import stages
    from flows.stages import StageFailed, run_stage

    run = RunDir(small_disk / "run")
    run.root.mkdir()
    key = stages.StageKey("curate", {}, "code", None, None)

    def fill() -> None:
        write_bytes(run.root / "curated" / "part-00000.parquet", b"x" * 400_000)

    with pytest.raises(StageFailed, match=rf"no space left on the device holding {run.root}.*crucible resume"):
        run_stage(run, key, fill)
    assert not (run.root / "curated" / "part-00000.parquet").exists()

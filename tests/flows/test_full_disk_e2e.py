"""End to end, a full disk for real: the debug pipeline in a run directory on a tmpfs the test
mounts (root; skipped with the reason otherwise), through the session's Prefect server, Ray
head and real DeepSpeed. Before each of curation, tokenization and training a ballast file
leaves the disk about half the room that stage's output needs (measured on the session's
run): the stage fails saying the disk is full and how to continue, and nothing half-written
is published. Once the ballast is gone the stage is run again, and after the training failure
`crucible resume` finishes the run. Its output equals the session's uninterrupted run: the
curated rows, the token shards, every loss and the final weights."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import torch

from infra.core.storage import RunDir, read_json
from tasks.training import checkpoint_store as store
from tasks.training.checkpoint import FINAL, load_model
from tasks.training.metrics import read_metrics
from tests.flows.e2e_env import crucible
from tests.tmpfs import small_tmpfs

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.root]


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


class Disk:
    def __init__(self, root: Path):
        self.root = root
        self.ballast = root / "ballast"

    def leave_free(self, n: int) -> None:
        """Fill the disk with a ballast file until `n` bytes are free."""
        self.ballast.unlink(missing_ok=True)
        stat = os.statvfs(self.root)
        fill = stat.f_bavail * stat.f_frsize - n
        assert fill > 0, "the tmpfs is too small for this test"
        with open(self.ballast, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, fill)

    def free_space(self) -> None:
        self.ballast.unlink()


@pytest.fixture
def disk(tmp_path):
    with small_tmpfs(tmp_path / "disk", "96m") as root:
        yield Disk(root)


def _fails_for_the_full_disk(result: subprocess.CompletedProcess, run: RunDir) -> None:
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"the disk holding {run.root} is full: free space first" in result.stderr, result.stderr[-3000:]
    assert f"crucible resume {run.root.name}" in result.stderr


def _finished(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _table(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


def test_a_full_disk_in_each_stage_fails_it_cleanly_and_resume_ends_as_an_uninterrupted_run(e2e, pipeline_run, disk):
    ref = pipeline_run.run
    run = RunDir(disk.root / "runs" / "full")
    # Evaluation is not what is tested here: one task, its cloze half only.
    cloze = ["--set", "evaluation.formulations=[cloze]", "--set", "evaluation.tasks=[arc_easy]"]
    common = ["-c", "debug", "--run-id", "full", "--set", f"runs_dir={run.root.parent}", *e2e.runtime_sets(), *cloze]

    disk.leave_free(_bytes(ref.curated) // 2)
    _fails_for_the_full_disk(crucible("curate", *common), run)
    assert read_json(run.root / "stages.json")["curate"]["status"] != "finished"
    for part in run.curated.glob("part-*.parquet"):  # what is under a final name is whole
        pq.read_metadata(part)
    disk.free_space()
    _finished(crucible("curate", *common))

    disk.leave_free(_bytes(ref.tokenizer) + _bytes(ref.shards) // 2)
    _fails_for_the_full_disk(crucible("tokenize", *common), run)
    assert not (run.shards / "manifest.json").exists()
    for shard in run.shards.rglob("part-*.arrow"):
        ipc.open_file(pa.memory_map(str(shard))).read_all()
    disk.free_space()
    _finished(crucible("tokenize", *common))

    # Room for the step-6 checkpoint and half the step-12 one.
    disk.leave_free(_bytes(ref.checkpoints / "step6") * 3 // 2)
    _fails_for_the_full_disk(crucible("train", *common), run)
    published = store.published_steps(run.checkpoints)
    assert [n for n, _ in published] == [6] and not (run.checkpoints / FINAL).exists()
    manifest, why = store.read_seal(published[0][1])
    assert manifest is not None and store.check_files(published[0][1], manifest["files"]) is None, why
    disk.free_space()
    resumed = crucible("resume", "full", "--runs-dir", str(run.root.parent))
    _finished(resumed)
    assert "step6 at step 6" in resumed.stdout + resumed.stderr  # resumed, not started over

    assert _table(run.curated).equals(_table(ref.curated))
    shards = [(s["file"], s["sha256"]) for s in read_json(run.shards / "manifest.json")["shards"]]
    assert shards == [(s["file"], s["sha256"]) for s in read_json(ref.shards / "manifest.json")["shards"]]
    assert [r["loss"] for r in read_metrics(run.metrics)[0]] == [r["loss"] for r in read_metrics(ref.metrics)[0]]
    a, _ = load_model(ref.checkpoints / FINAL)
    b, _ = load_model(run.checkpoints / FINAL)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert (run.root / "eval" / "results.json").is_file()

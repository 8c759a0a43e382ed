"""A re-run of shard tokenization skips finished shards and rebuilds altered ones."""

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.tokenization.bpe import prepare_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.prefect_tasks import tokenize_shard_task


def test_finished_shards_are_skipped_and_altered_ones_rebuilt(tmp_path):
    cfg = TokenizationConfig(vocab_size=280, seq_len=16, val_fraction=0.2)
    curated = []
    for f in range(2):
        path = tmp_path / "curated" / f"part-{f:05d}.parquet"
        path.parent.mkdir(exist_ok=True)
        texts = [f"shard {f} document {i} about rivers and {i * 3} boats." for i in range(40)]
        pq.write_table(pa.table({"id": [f"{f}-{i}" for i in range(40)], "text": texts}), path)
        curated.append(path)
    tok = tmp_path / "tokenizer.json"
    prepare_tokenizer(curated, cfg, tok)
    out = tmp_path / "shards"
    first = [tokenize_shard_task.fn(str(p), i, str(tok), cfg, str(out)) for i, p in enumerate(curated)]
    files = {e["file"]: (out / e["file"]).stat().st_mtime_ns for r in first for e in r["entries"]}

    altered = out / first[1]["entries"][0]["file"]
    altered.write_bytes(altered.read_bytes()[:-8] + b"\x00" * 8)  # same size, other bytes
    again = [tokenize_shard_task.fn(str(p), i, str(tok), cfg, str(out)) for i, p in enumerate(curated)]

    assert again[0] == first[0]  # the marker's result, task not re-run
    assert all((out / e["file"]).stat().st_mtime_ns == files[e["file"]] for e in first[0]["entries"])
    assert [e["sha256"] for e in again[1]["entries"]] == [e["sha256"] for e in first[1]["entries"]]
    assert altered.stat().st_mtime_ns != files[first[1]["entries"][0]["file"]]  # rebuilt


def test_a_run_directory_copied_elsewhere_keeps_its_finished_work(tmp_path):
    """The work fingerprint names the run's own files relative to it: a run moved or copied
    with its modification times (cp -a, rsync -a) does not discard its finished tasks."""
    import shutil

    from infra.core.task_markers import file_fingerprint, prepare_work

    run = tmp_path / "run"
    (run / "curated").mkdir(parents=True)
    (run / "curated" / "part-00000.parquet").write_bytes(b"x" * 10)
    outside = tmp_path / "tokenizer.json"
    outside.write_text("{}")

    def fingerprint(root):
        return {"inputs": file_fingerprint([root / "curated" / "part-00000.parquet", outside], root)}

    prepare_work(run / "shards", fingerprint(run), run / "shards" / "_markers")
    (run / "shards" / "_markers").mkdir()
    (run / "shards" / "_markers" / "0.json").write_text("{}")
    assert fingerprint(run)["inputs"][0][0] == "curated/part-00000.parquet"
    assert fingerprint(run)["inputs"][1][0] == str(outside)  # a file elsewhere keeps its full name

    moved = shutil.copytree(run, tmp_path / "moved")  # copy2: modification times kept
    prepare_work(moved / "shards", fingerprint(moved), moved / "shards" / "_markers")
    assert (moved / "shards" / "_markers" / "0.json").is_file()  # kept, not discarded
    (moved / "curated" / "part-00000.parquet").write_bytes(b"y" * 11)  # an input changed
    prepare_work(moved / "shards", fingerprint(moved), moved / "shards" / "_markers")
    assert not (moved / "shards" / "_markers").exists()  # discarded

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

"""Tokenization throughput per core: our shard tokenizer against the raw `tokenizers` encoder.

Ours is `tasks.tokenization.shards.tokenize_shard` on each curated Parquet file: reading
the Parquet, encoding, splitting by source and split, packing rows and writing the Arrow
files with their SHA-256. The peer is the same tokenizer's batch encoder alone
(`encode_batch` and `encode_batch_fast`, the faster counts) over the same texts, already
in memory, writing nothing. Both run in fresh processes with one tokenizer thread, turn
about. Prints MB/s of text per core and the ratio ours/peer. Goal: >= 0.9.

Input: a folder of curated `part-*.parquet` (a run's `curated/`), or of JSONL documents
(`curation_input.py` output, converted to Parquet first, untimed).
Usage: .venv/bin/python benchmarks/tokenization_throughput.py --input runs/demo/curated [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def to_parquet(src: Path, dest: Path, shard_mb: int = 16) -> list[Path]:
    """JSONL documents into Parquet shards of about `shard_mb` MB of text (untimed set-up)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out, rows, size = [], [], 0

    def flush() -> None:
        nonlocal rows, size
        path = dest / f"part-{len(out):05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        out.append(path)
        rows, size = [], 0

    for f in sorted(src.rglob("*.jsonl")):
        for line in f.open(encoding="utf-8"):
            d = json.loads(line)
            rows.append({"id": str(d["id"]), "text": d["text"], "source": d.get("source") or "unknown"})
            size += len(d["text"])
            if size >= shard_mb << 20:
                flush()
    if rows:
        flush()
    return out


def text_bytes(path: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return int(pc.sum(pc.binary_length(pq.read_table(path, columns=["text"]).column("text"))).as_py())


def child(mode: str, files: list[str], tokenizer: str, out: str) -> None:
    """One timed side, run in a fresh process so each gets the same single-threaded encoder."""
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    from tasks.tokenization.config import TokenizationConfig
    from tasks.tokenization.shards import tokenize_shard

    cfg = TokenizationConfig(seq_len=1024, val_fraction=0.01)
    if mode == "ours":
        start = time.perf_counter()
        for i, f in enumerate(files):
            tokenize_shard(Path(f), i, Path(tokenizer), cfg, Path(out))
        print(json.dumps({"seconds": time.perf_counter() - start}))
        return
    tok = Tokenizer.from_file(tokenizer)
    texts = [pq.read_table(f, columns=["text"]).column("text").to_pylist() for f in files]
    encode = tok.encode_batch_fast if mode == "fast" else tok.encode_batch
    start = time.perf_counter()
    tokens = 0
    for shard in texts:
        for i in range(0, len(shard), cfg.batch_docs):
            tokens += sum(len(e.ids) for e in encode(shard[i : i + cfg.batch_docs], add_special_tokens=False))
    print(json.dumps({"seconds": time.perf_counter() - start, "tokens": tokens}))


def run_child(mode: str, files: list[Path], tokenizer: Path, out: Path) -> float:
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--tokenizer", str(tokenizer), "--out", str(out), *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, help="curated Parquet folder, or JSONL folder")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer.json (default: train an 8k BPE on the input)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.files, str(args.tokenizer), args.out)
        return
    if args.input is None:
        ap.error("--input is required")

    with tempfile.TemporaryDirectory(prefix="tok-bench-") as tmp_name:
        tmp = Path(tmp_name)
        files = sorted(args.input.glob("part-*.parquet")) or to_parquet(args.input, tmp)
        mb = sum(text_bytes(f) for f in files) / 1e6
        tokenizer = args.tokenizer
        if tokenizer is None:
            from tasks.tokenization.bpe import prepare_tokenizer
            from tasks.tokenization.config import TokenizationConfig

            tokenizer = tmp / "tokenizer.json"
            prepare_tokenizer(files, TokenizationConfig(vocab_size=8192, train_sample_bytes=20_000_000), tokenizer)
        times: dict[str, list[float]] = {"ours": [], "encode_batch": [], "encode_batch_fast": []}
        for r in range(args.repeats):  # alternate, so machine noise hits all sides alike
            times["ours"].append(run_child("ours", files, tokenizer, tmp / f"shards-{r}"))
            times["encode_batch"].append(run_child("batch", files, tokenizer, tmp))
            times["encode_batch_fast"].append(run_child("fast", files, tokenizer, tmp))
        best = {k: min(v) for k, v in times.items()}
        peer = min(best["encode_batch"], best["encode_batch_fast"])
        print(f"input: {len(files)} Parquet files, {mb:.1f} MB of text; 1 core each side")
        for k, v in times.items():
            print(
                f"{k:>18}: best {best[k]:.2f} s  median {statistics.median(v):.2f} s  {mb / best[k]:.2f} MB/s per core"
            )
        print(f"ratio ours / fastest raw encoder: {peer / best['ours']:.3f}x (goal >= 0.9)")


if __name__ == "__main__":
    main()

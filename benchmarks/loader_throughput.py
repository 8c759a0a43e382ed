"""Training-loader throughput and memory: our stream against nanoGPT's memmap sampler.

The same random tokens are written twice: as our Arrow token shards (with a manifest, via
the tokenizer stage's writer) and as one flat uint16 `.bin` file. Ours draws batches with
`TrainingData` + `RankSampler` (seeded permutation, mixture lookup, memory-mapped gather,
targets masked); the peer is nanoGPT's `get_batch`: a fresh `np.memmap` per batch, random
offsets from `torch.randint`, one slice per sequence. Each side runs in a fresh process,
turn about, at the base size and at `--scale` times it, and reports sequences/s and its
peak anonymous memory (VmHWM minus file-backed pages: the memory a larger dataset could
grow; mapped file pages are the page cache's). Goal: ratio >= 1, memory flat with size.

Usage: .venv/bin/python benchmarks/loader_throughput.py [--tokens 50_000_000 --scale 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILE_TOKENS = 25_000_000  # tokens per Arrow shard, about a curated shard's worth


def write_data(dest: Path, tokens: int, seq_len: int, vocab: int) -> None:
    """Random tokens as our shards (two sources) and as nanoGPT's train.bin, both the same stream."""
    import pyarrow as pa

    from infra.core.storage import sha256_file, write_json
    from tasks.tokenization.mixture import plan_mixture
    from tasks.tokenization.shards import SCHEMA_VERSION, write_table

    row_len = seq_len + 1
    rng = np.random.default_rng(0)
    entries = []
    with open(dest / "train.bin", "wb") as flat:
        for i, start in enumerate(range(0, tokens, FILE_TOKENS)):
            n = min(FILE_TOKENS, tokens - start) // row_len * row_len
            chunk = rng.integers(0, vocab, n, dtype=np.uint16)
            chunk.tofile(flat)
            rows = n // row_len
            table = pa.table(
                {
                    "tokens": pa.FixedSizeListArray.from_arrays(pa.array(chunk), row_len),
                    "length": pa.array(np.full(rows, row_len, np.int32)),
                    # One document start per row, so the column has the layout of real shards.
                    "doc_starts": pa.ListArray.from_arrays(
                        pa.array(np.arange(rows + 1, dtype=np.int32)), pa.array(np.full(rows, 7, np.int32))
                    ),
                }
            )
            source = "web" if i % 2 == 0 else "books"
            path = dest / "train" / source / f"part-{i:05d}.arrow"
            write_table(table, path, {"tokenizer_sha256": "bench", "vocab_size": str(vocab), "row_len": str(row_len)})
            entries.append(
                {
                    "split": "train",
                    "source": source,
                    "file": str(path.relative_to(dest)),
                    "rows": rows,
                    "tokens": n,
                    "bytes": path.stat().st_size,
                    "sha256": sha256_file(path),
                }
            )
    by = {s: [e for e in entries if e["source"] == s] for s in ("web", "books")}
    by = {s: v for s, v in by.items() if v}
    plan = plan_mixture(
        {s: sum(e["rows"] for e in v) for s, v in by.items()},
        {s: sum(e["tokens"] for e in v) for s, v in by.items()},
        None,
    )
    write_json(
        dest / "manifest.json",
        {
            "schema": SCHEMA_VERSION,
            "tokenizer_sha256": "bench",
            "row_len": row_len,
            "seq_len": seq_len,
            "vocab_size": vocab,
            "mixture": plan,
            "shards": entries,
        },
    )


def anon_peak_mb() -> float:
    """Peak resident memory less the file-backed pages resident now (mapped shards)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kb = lambda k: int(status[k].split()[0])  # noqa: E731
    return (kb("VmHWM") - kb("RssFile")) / 1024


def child(side: str, data: Path, batches: int, batch: int, seq_len: int) -> None:
    import torch

    torch.set_num_threads(1)
    if side == "ours":
        from tasks.training.data import TrainingData

        train = TrainingData(data, seed=1, verify="size")
        sampler = train.sampler(rank=0, world=1, batch=batch)

        def get_batch():
            return train.gather(*sampler.next_batch())
    else:
        path = data / "train.bin"

        def get_batch():  # nanoGPT's train.py, CPU branch
            mm = np.memmap(path, dtype=np.uint16, mode="r")
            ix = torch.randint(len(mm) - seq_len, (batch,))
            x = torch.stack([torch.from_numpy(mm[i : i + seq_len].astype(np.int64)) for i in ix])
            y = torch.stack([torch.from_numpy(mm[i + 1 : i + 1 + seq_len].astype(np.int64)) for i in ix])
            return x, y

    for _ in range(20):
        get_batch()  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        x, y = get_batch()[:2]
    seconds = time.perf_counter() - start
    assert x.shape == (batch, seq_len) and y.shape == (batch, seq_len)
    print(json.dumps({"seq_per_s": batches * batch / seconds, "anon_peak_mb": anon_peak_mb()}))


def run_child(side: str, data: Path, args) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            side,
            "--data",
            str(data),
            "--batches",
            str(args.batches),
            "--batch",
            str(args.batch),
            "--seq-len",
            str(args.seq_len),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=50_000_000, help="base dataset size in tokens")
    ap.add_argument("--scale", type=int, default=10, help="the larger dataset is this many times the base")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="where the data is written (default: a temp dir)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.batches, args.batch, args.seq_len)
        return
    with tempfile.TemporaryDirectory(prefix="loader-bench-", dir=args.workdir) as tmp:
        results = {}
        for size in (args.tokens, args.tokens * args.scale):
            data = Path(tmp) / f"{size}"
            data.mkdir()
            t0 = time.perf_counter()
            write_data(data, size, args.seq_len, vocab=50257)
            print(
                f"wrote {size:,} tokens ({size * 2 / 1e9:.2f} GB per copy) in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            runs = {"ours": [], "nanogpt": []}
            for _ in range(args.repeats):
                for side in runs:  # alternate, so machine noise hits both alike
                    runs[side].append(run_child(side, data, args))
            results[size] = {
                side: {"seq_per_s": max(r["seq_per_s"] for r in v), "anon_peak_mb": max(r["anon_peak_mb"] for r in v)}
                for side, v in runs.items()
            }
            r = results[size]
            print(
                f"{size:>13,} tokens: ours {r['ours']['seq_per_s']:,.0f} seq/s "
                f"({r['ours']['anon_peak_mb']:.0f} MB), nanoGPT {r['nanogpt']['seq_per_s']:,.0f} seq/s "
                f"({r['nanogpt']['anon_peak_mb']:.0f} MB); "
                f"ratio {r['ours']['seq_per_s'] / r['nanogpt']['seq_per_s']:.2f}x",
                flush=True,
            )
            for f in data.rglob("*"):  # free the disk before the next size
                if f.is_file():
                    f.unlink()
        small, large = (results[s] for s in (args.tokens, args.tokens * args.scale))
        for side in ("ours", "nanogpt"):
            print(
                f"{side}: peak anonymous memory {small[side]['anon_peak_mb']:.0f} MB -> "
                f"{large[side]['anon_peak_mb']:.0f} MB at {args.scale}x the data "
                f"({large[side]['anon_peak_mb'] / small[side]['anon_peak_mb']:.2f}x)"
            )


if __name__ == "__main__":
    main()

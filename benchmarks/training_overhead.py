"""Tokens/s of Crucible's DeepSpeed training path against a plain PyTorch loop, 1 rank, CPU.

Both train the same model (the GPT-2-124M shape, with the vocabulary of a BPE trained on the
given text) on the same token shards, in the same order, with the same batch, AdamW,
clipping and schedule, in fp32 with the same number of threads. Ours is the real thing: a
DeepSpeed engine (ZeRO stage as given) in `tasks.training.loop.train`, started as a rank
process by `tasks.training.launch`, with its per-step metrics, host sync and data loader.
Theirs is the loop nanoGPT would write: model(x, y).backward(), clip, step. Rounds
alternate, so machine noise hits both alike; each side's figure is the median step after
warm-up, and the ratio ours/plain is printed. Goal: >= 0.95.

Usage: .venv/bin/python benchmarks/training_overhead.py [--text FILE] [--steps 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from infra.core.storage import RunDir, write_json
from models.flops import parameter_count
from models.presets import get_preset
from tasks.tokenization.bpe import prepare_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.manifest import build_manifest
from tasks.tokenization.shards import tokenize_shard
from tasks.training.config import TrainingConfig
from tasks.training.data import TrainingData
from tasks.training.engine import param_groups
from tasks.training.launch import run_local
from tasks.training.loop import TrainJob
from tasks.training.metrics import read_metrics
from tasks.training.schedule import make_scheduler

DEFAULT_TEXT = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "tinyshakespeare_input.txt"


def token_run(rows: list[dict], root: Path, cfg: TokenizationConfig) -> None:
    """One curated Parquet file of `rows`, a BPE trained on it, and its token shards, laid out
    as a run directory (single process: the benchmarks time training, not tokenization)."""
    path = root / "curated" / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    tok = root / "tokenizer" / "tokenizer.json"
    prepare_tokenizer([path], cfg, tok)
    entries = tokenize_shard(path, 0, tok, cfg, root / "shards")
    write_json(root / "shards" / "manifest.json", build_manifest(entries, tok, cfg))


def build_run(text: Path, root: Path, vocab: int, seq_len: int) -> None:
    """Token shards from a plain text file, one document per blank-line-separated paragraph."""
    paras = [p.strip() for p in text.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    token_run(
        [{"id": str(i), "text": p, "source": "text"} for i, p in enumerate(paras)],
        root,
        TokenizationConfig(vocab_size=vocab, seq_len=seq_len, val_fraction=0.02),
    )


def plain_loop(root: Path, model_cfg, cfg: TrainingConfig, threads: int) -> list[float]:
    """tokens/s per step of a plain PyTorch loop over the same stream."""
    from models.gpt import GPT

    torch.set_num_threads(threads)
    manifest = json.loads((root / "shards" / "manifest.json").read_text())
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg, manifest["vocab_size"], manifest["seq_len"]).train()
    # The same AdamW as ours on CPU: torch's, with its fused kernel.
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)
    sched = make_scheduler(opt, cfg)
    data = TrainingData(RunDir(root).shards, cfg.seed)
    sampler = data.sampler(0, 1, cfg.micro_batch_size)
    rates = []
    for _ in range(cfg.max_steps):
        t0 = time.perf_counter()
        x, y = data.gather(*sampler.next_batch())
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the one host sync per step our loop makes too
        rates.append(int((y != -100).sum()) / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup-steps", type=int, default=2, help="steps left out of the median")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--zero-stage", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not args.text.is_file():
        raise SystemExit(f"{args.text} not found; pass --text with any plain-text file of a megabyte or more")
    model_cfg = get_preset("gpt2-124m").model
    cfg = TrainingConfig(
        num_workers=1,
        micro_batch_size=args.micro_batch,
        max_steps=args.steps,
        warmup_steps=1,
        lr=6e-4,
        zero_stage=args.zero_stage,
        precision="fp32",
        checkpoint_every=10**6,
        eval_every=10**6,
        eval_batches=1,
        tensorboard=False,
        verify_shards="size",
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_run(args.text, data, args.vocab, args.seq)
        results: dict[str, list[float]] = {"deepspeed": [], "plain": []}
        for r in range(args.rounds):
            root = Path(tmp) / f"ours{r}"
            root.mkdir()
            for part in ("shards", "tokenizer"):
                (root / part).symlink_to(data / part)
            job = TrainJob(str(root), cfg.model_dump(mode="json"), model_cfg.model_dump(mode="json"), "cpu", "fp32")
            codes = run_local(job, 1, threads_per_rank=args.threads, timeout=3600)
            if codes != [0]:
                raise SystemExit((root / "logs" / "rank0.log").read_text()[-3000:])
            steps, _ = read_metrics(RunDir(root).metrics)
            results["deepspeed"] += [s["tokens_per_s"] for s in steps[args.warmup_steps :]]
            results["plain"] += plain_loop(data, model_cfg, cfg, args.threads)[args.warmup_steps :]
    med = {k: statistics.median(v) for k, v in results.items()}
    params = parameter_count(model_cfg, args.vocab, args.seq)
    print(
        f"model: gpt2-124m shape, vocabulary {args.vocab}, {params:,} parameters; batch {args.micro_batch} x "
        f"{args.seq}; fp32, ZeRO {args.zero_stage}, {args.threads} threads; {args.rounds} rounds x "
        f"{args.steps - args.warmup_steps} timed steps"
    )
    for k, v in med.items():
        print(f"{k:>10}: {v:,.1f} tokens/s (median of {len(results[k])} steps)")
    print(f"ratio deepspeed/plain: {med['deepspeed'] / med['plain']:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()

"""The GPU check, as one script that finishes in a few minutes on one machine.

1. Throughput: the GPT-2-124M shape (vocabulary 50,257), sequence 1024, bf16, ZeRO-1, one
   GPU, `--steps` steps through the real loop (`tasks.training.loop` in a rank process
   started by `tasks.training.launch`, NCCL), reporting tokens/s and MFU (peak from the
   table in `tasks/training/metrics.py`) over the second half of the steps.
2. If the machine has 2 GPUs: a 2-rank NCCL bf16 run killed with SIGKILL at step k and
   resumed, whose losses must equal an uninterrupted run's bit for bit.
3. If the machine has 2 GPUs: tensor parallelism T=2 over NCCL against one GPU, fp32, 10
   steps, the same global batch: the losses must agree within 1e-4 relative.

The token shards come from a synthetic corpus of seeded random words (the throughput does
not depend on the text) through the project's own BPE trainer and tokenizer, so nothing is
read from outside. Prints one JSON line per figure and writes them to `--out`.

Usage: python benchmarks/gpu_training.py [--steps 300] [--micro-batch 16] [--out results.json]

On a GPU machine that has PyTorch, pyarrow, tokenizers, numpy and tqdm but not the rest of
the stack, these are what the script imports besides: deepspeed==0.19.8, hjson, pydantic
(with pydantic-core, annotated-types, typing-inspection) and tensorboardX, as wheels for its
Python. DeepSpeed JIT-builds its fused Adam with nvcc and ninja on the first run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import string
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.training_overhead import token_run
from infra.core.storage import RunDir
from models.presets import get_preset
from tasks.tokenization.config import TokenizationConfig
from tasks.training.launch import run_local
from tasks.training.loop import Faults, TrainJob
from tasks.training.metrics import read_metrics


def synthetic_run(root: Path, vocab: int, seq_len: int, docs: int, seed: int = 0) -> None:
    rnd = random.Random(seed)
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(2, 9))) for _ in range(60_000)]
    rows = [
        {"id": str(i), "source": "synthetic", "text": " ".join(rnd.choices(words, k=rnd.randint(100, 600))) + "."}
        for i in range(docs)
    ]
    token_run(
        rows,
        root,
        TokenizationConfig(vocab_size=vocab, seq_len=seq_len, val_fraction=0.01, train_sample_bytes=20_000_000),
    )


def job(root: Path, world: int, steps: int, micro: int, device: str, precision: str, preset: str, **extra) -> TrainJob:
    training = {
        "num_workers": world,
        "micro_batch_size": micro,
        "max_steps": steps,
        "warmup_steps": max(1, steps // 10),
        "lr": 6e-4,
        "zero_stage": 1,
        "precision": precision,
        "device": device,
        "checkpoint_every": 10**6,
        "eval_every": 10**6,
        "eval_batches": 2,
        "verify_shards": "size",
        **extra,
    }
    return TrainJob(str(root), training, get_preset(preset).model.model_dump(mode="json"), device, precision)


def copy_data(src: Path, name: str) -> Path:
    dest = src.parent / name
    dest.mkdir()
    for part in ("shards", "tokenizer"):
        shutil.copytree(src / part, dest / part)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--preset", default="gpt2-124m")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--resume-steps", type=int, default=40, help="steps of the 2-GPU kill-and-resume check")
    ap.add_argument("--out", type=Path, default=Path("gpu_training.json"))
    args = ap.parse_args()
    import torch

    results: dict = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}

    def report(key: str, value) -> None:
        results[key] = value
        print(json.dumps({key: value}), flush=True)
        args.out.write_text(json.dumps(results, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.time()
        synthetic_run(data, args.vocab, args.seq, args.docs)
        manifest = json.loads((data / "shards" / "manifest.json").read_text())
        report(
            "data",
            {
                "vocab_size": manifest["vocab_size"],
                "train_tokens": manifest["splits"]["train"]["tokens"],
                "seconds": round(time.time() - t0, 1),
            },
        )

        root = copy_data(data, "throughput")
        codes = run_local(
            job(root, 1, args.steps, args.micro_batch, args.device, args.precision, args.preset),
            1,
            threads_per_rank=4,
            timeout=1800,
        )
        if codes != [0]:
            print((root / "logs" / "rank0.log").read_text()[-5000:])
            raise SystemExit(f"throughput run failed: {codes}")
        steps, _ = read_metrics(RunDir(root).metrics)
        half = steps[len(steps) // 2 :]
        mfus = [s["mfu"] for s in half if s["mfu"] is not None]
        report(
            "throughput",
            {
                "steps": len(steps),
                "tokens_per_s": sum(s["tokens_per_s"] for s in half) / len(half),
                "mfu": sum(mfus) / len(mfus) if mfus else None,
                "peak_mem_mb": max(s["peak_mem_mb"] for s in steps),
                "final_loss": steps[-1]["loss"],
                "micro_batch": args.micro_batch,
                "seq": args.seq,
            },
        )

        if args.device == "cuda" and torch.cuda.device_count() >= 2:
            n, kill = args.resume_steps, args.resume_steps // 2 + 1
            extra = {"checkpoint_every": args.resume_steps // 4}
            ref = copy_data(data, "ref")
            assert run_local(job(ref, 2, n, 4, "cuda", "bf16", args.preset, **extra), 2, timeout=1800) == [0, 0]
            killed = copy_data(data, "killed")
            run_local(
                job(killed, 2, n, 4, "cuda", "bf16", args.preset, **extra), 2, Faults(kill_at_step=kill), timeout=1800
            )
            assert run_local(job(killed, 2, n, 4, "cuda", "bf16", args.preset, **extra), 2, timeout=1800) == [0, 0]
            a = [s["loss"] for s in read_metrics(RunDir(ref).metrics)[0]]
            b = [s["loss"] for s in read_metrics(RunDir(killed).metrics)[0]]
            report(
                "nccl_kill_resume",
                {
                    "steps": n,
                    "killed_at": kill,
                    "identical": a == b,
                    "max_abs_diff": max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else None,
                },
            )
        else:
            report("nccl_kill_resume", "skipped: fewer than 2 GPUs")

        if args.device == "cuda" and torch.cuda.device_count() >= 2:
            # Tensor parallelism over NCCL against one GPU: fp32 (no TF32: the loop's matmuls
            # keep torch's default), the same global batch, 10 steps.
            n, extra = 10, {"global_batch_size": 8, "warmup_steps": 2}
            one = copy_data(data, "tp-one")
            assert run_local(job(one, 1, n, 4, "cuda", "fp32", args.preset, **extra), 1, timeout=1800) == [0]
            two = copy_data(data, "tp-two")
            codes = run_local(
                job(two, 2, n, 4, "cuda", "fp32", args.preset, parallel={"tensor": 2}, **extra), 2, timeout=1800
            )
            if codes != [0, 0]:
                print((two / "logs" / "rank0.log").read_text()[-5000:])
                raise SystemExit(f"tensor-parallel run failed: {codes}")
            a = [s["loss"] for s in read_metrics(RunDir(one).metrics)[0]]
            b = [s["loss"] for s in read_metrics(RunDir(two).metrics)[0]]
            rel = max(abs(x - y) / abs(x) for x, y in zip(a, b))
            report(
                "nccl_tensor_parallel",
                {
                    "steps": n,
                    "max_relative_loss_diff": rel,
                    "within_1e-4": rel <= 1e-4,
                    "export_check": json.loads((two / "train_summary.json").read_text())["export_check"],
                },
            )
        else:
            report("nccl_tensor_parallel", "skipped: fewer than 2 GPUs")


if __name__ == "__main__":
    main()

"""Memory per rank under ZeRO stages 0-3 on 2 CPU ranks, against what each stage should hold.

Each stage trains the GPT-2-350M shape (vocabulary 8192: 330M parameters) for a few steps
of a tiny batch (so activations are negligible) on 2 gloo ranks in fp32 with AdamW, through
the same engine set-up as training (`tasks.training.engine`). Per rank it reads the
resident memory just before the model is built (the baseline: torch, DeepSpeed, gloo),
after the last step (the state the stage keeps), and the peak (VmHWM), and compares the
growth over the baseline with the bytes per parameter the stage should hold, in fp32 with
N ranks (DeepSpeed keeps an fp32 master partition beside the parameters under ZeRO):

    stage 0: params 4 + grads 4 + Adam 8                     = 16
    stage 1: params 4 + grads 4 + (master 4 + Adam 8) / N    = 14 at N=2
    stage 2: params 4 + (grads 4 + master 4 + Adam 8) / N    = 12
    stage 3: (params 4 + grads 4 + master 4 + Adam 8) / N    = 10

Usage: .venv/bin/python benchmarks/zero_memory.py [--stages 0 1 2 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

EXPECTED = {0: lambda n: 16, 1: lambda n: 8 + 12 / n, 2: lambda n: 4 + 16 / n, 3: lambda n: 20 / n}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def worker(
    rank: int,
    world: int,
    port: int,
    stage: int,
    steps: int,
    out: str,
    bucket: int | None = None,
    preset: str = "gpt2-124m",
) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    import deepspeed  # noqa: F401  (imported before the baseline: its code is not model state)

    from models.flops import parameter_count
    from models.presets import get_preset
    from tasks.training.config import TrainingConfig
    from tasks.training.deepspeed_config import deepspeed_config
    from tasks.training.engine import build_engine, build_model

    vocab, seq = 8192, 32
    model_cfg = get_preset(preset).model
    cfg = TrainingConfig(
        num_workers=world,
        micro_batch_size=1,
        max_steps=steps + 1,
        warmup_steps=1,
        zero_stage=stage,
        precision="fp32",
        **({"zero_bucket_size": bucket} if bucket else {}),
    )
    ds = deepspeed_config(cfg, world, "fp32", "cpu", grad_accum=1)
    dist.barrier()
    base = _status_mb("VmRSS")
    engine = build_engine(build_model(model_cfg, cfg, vocab, seq, ds, rank), cfg, ds)
    x = torch.randint(0, vocab, (1, seq))
    held = 0.0
    for i in range(steps):
        engine.backward(engine(x, x, None, 0.0))
        if i > 0:  # the optimizer's states exist from the first step on
            held = max(held, _status_mb("VmRSS"))  # gradients and states both held: the stage's figure
        engine.step()
    dist.barrier()
    result = {
        "rank": rank,
        "params": parameter_count(model_cfg, vocab, seq),
        "base_mb": base,
        "after_mb": held,
        "peak_mb": _status_mb("VmHWM"),
    }
    Path(out).write_text(json.dumps(result))
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stages", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--preset", default="gpt2-350m", help="model shape (models/presets.py)")
    ap.add_argument("--bucket", type=int, default=None, help="training.zero_bucket_size (default: the config's)")
    args = ap.parse_args()
    import subprocess

    from tasks.training.launch import free_port

    print(f"{'stage':>5} | {'expected B/param':>16} | {'held (backward)':>16} | {'peak':>14} | held vs expected")
    for stage in args.stages:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            root = str(Path(__file__).resolve().parents[1])
            code = (
                f"import sys; sys.path.insert(0, {root!r}); from benchmarks.zero_memory import worker; "
                f"worker(int(sys.argv[1]), {args.world:d}, {port:d}, {stage:d}, {args.steps:d}, sys.argv[2], "
                f"{args.bucket!r}, {args.preset!r})"
            )
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", code, str(r), f"{tmp}/r{r}.json"],
                    env={
                        **os.environ,
                        "DS_ACCELERATOR": "cpu",
                        "OMP_NUM_THREADS": "1",
                        # glibc would otherwise keep freed tensors' pages (its mmap
                        # threshold rises after each large free), and the resident
                        # size would count memory the stage no longer holds.
                        "MALLOC_MMAP_THRESHOLD_": "65536",
                    },
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for r in range(args.world)
            ]
            errs = [p.communicate()[1] for p in procs]
            if any(p.returncode for p in procs):
                raise SystemExit(b"\n".join(errs).decode()[-3000:])
            rs = [json.loads(Path(f"{tmp}/r{r}.json").read_text()) for r in range(args.world)]
        n = rs[0]["params"]
        held = max(r["after_mb"] - r["base_mb"] for r in rs) * 2**20 / n
        peak = max(r["peak_mb"] - r["base_mb"] for r in rs) * 2**20 / n
        want = EXPECTED[stage](args.world)
        print(f"{stage:>5} | {want:>16.1f} | {held:>16.2f} | {peak:>14.2f} | {held / want - 1:+.1%}")
    print(
        f"(bytes per parameter per rank, {args.preset} shape with vocabulary 8192: {n:,} parameters, "
        f"{args.world} ranks, fp32 + AdamW, ZeRO buckets of {args.bucket or 'the default'} elements)"
    )


if __name__ == "__main__":
    main()

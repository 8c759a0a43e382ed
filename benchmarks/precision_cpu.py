"""Forward+backward throughput of the demo model in bf16 against fp32, on this machine's CPU.

Why `training.precision: auto` picks fp32 on CPUs without native bf16. Prints tokens/s for
each and the ratio. Usage: .venv/bin/python benchmarks/precision_cpu.py [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from infra.app.config import load_config
from models.gpt import GPT
from models.reference import lm_loss


def tokens_per_s(model: torch.nn.Module, batch: torch.Tensor, repeats: int) -> float:
    lm_loss(model(batch[:, :-1]), batch[:, 1:]).backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        lm_loss(model(batch[:, :-1]), batch[:, 1:]).backward()
    return repeats * batch[:, :-1].numel() / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a Ray worker gets 1 per CPU)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("demo")
    torch.manual_seed(0)
    vocab, seq = cfg.tokenization.vocab_size, cfg.tokenization.seq_len
    batch = torch.randint(0, vocab, (cfg.training.micro_batch_size, seq + 1))
    model = GPT(cfg.model, vocab, seq)
    fp32 = tokens_per_s(model, batch, args.repeats)
    bf16 = tokens_per_s(model.to(torch.bfloat16), batch, args.repeats)
    print(
        f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}"
    )
    print(f"fp32: {fp32:,.0f} tokens/s   bf16: {bf16:,.0f} tokens/s   fp32/bf16 = {fp32 / bf16:.1f}x")


if __name__ == "__main__":
    main()

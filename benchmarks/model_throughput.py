"""Forward+backward tokens/s of our GPT-2-124M shape against transformers' GPT2LMHeadModel.

Same shape (exact GeLU, no dropout), same batch, same threads, measured alternately in one
run. Each model runs its own training path: ours the fused head + loss (models/fused_loss.py),
theirs logits then cross-entropy; prints each median and the ratio ours/theirs. Goal: >= 1.0.
Usage: .venv/bin/python benchmarks/model_throughput.py [--batch 4 --seq 128 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from models.gpt import GPT
from models.presets import get_preset
from models.reference import lm_loss


def step_time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPT2Config, GPT2LMHeadModel

    p = get_preset("gpt2-124m")
    torch.manual_seed(0)
    ours = GPT(p.model, p.vocab_size, p.seq_len).train()
    theirs = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=p.vocab_size,
            n_positions=p.seq_len,
            n_embd=p.model.d_model,
            n_layer=p.model.n_layer,
            n_head=p.model.n_head,
            activation_function="gelu",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    ).train()
    assert ours.num_parameters() == theirs.num_parameters()
    data = torch.randint(0, p.vocab_size, (args.batch, args.seq + 1))
    x, y = data[:, :-1], data[:, 1:]

    def ours_step() -> None:
        ours.zero_grad(set_to_none=True)
        ours(x, y).backward()  # our training path: fused head + loss

    def theirs_step() -> None:
        theirs.zero_grad(set_to_none=True)
        lm_loss(theirs(x).logits, y).backward()  # logits, then fp32 cross-entropy, as their loss does

    ours_step(), theirs_step()  # warm-up
    times: dict[str, list[float]] = {"ours": [], "transformers": []}
    for _ in range(args.repeats):  # alternate, so machine noise hits both alike
        times["ours"].append(step_time(ours_step))
        times["transformers"].append(step_time(theirs_step))
    tokens = args.batch * args.seq
    rate = {k: tokens / statistics.median(v) for k, v in times.items()}
    print(
        f"GPT-2 124M shape, batch {args.batch} x {args.seq} tokens, {args.threads} threads, "
        f"{ours.num_parameters():,} parameters each"
    )
    print(
        f"ours: {rate['ours']:,.0f} tokens/s   transformers: {rate['transformers']:,.0f} tokens/s   "
        f"ratio {rate['ours'] / rate['transformers']:.2f}x"
    )


if __name__ == "__main__":
    main()

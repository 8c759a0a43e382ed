"""Plain, slow versions of what the model does fast, kept as the yardstick that tests and
benchmarks hold the fast paths to: the unfused fp32 loss (against the fused head +
cross-entropy) and cache-free greedy decoding (against the key/value-cache decoder and the
exported Hugging Face model). Nothing in the pipeline calls them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.gpt import GPT


@torch.no_grad()
def greedy_generate(model: GPT, ids: list[int], new_tokens: int) -> list[int]:
    """Append `new_tokens` argmax tokens (no cache: a reference, not a fast sampler)."""
    out = list(ids)
    for _ in range(new_tokens):
        logits = model(torch.tensor([out[-model.seq_len :]]))
        out.append(int(logits[0, -1].argmax()))
    return out


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, computed in fp32 for stability under bf16."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))

"""Perplexity and bits per byte of a model on held-out token rows.

End-of-text and padding targets are left out of both the loss and the byte count: they mark document
boundaries, not text. A byte-level BPE token's string has one character per byte, so a
token's byte length is the length of its vocabulary entry.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from tasks.tokenization.reader import IGNORE, TokenRows, to_batch


def token_byte_lengths(tok: Tokenizer, special_ids: set[int]) -> np.ndarray:
    lengths = np.zeros(tok.get_vocab_size(), dtype=np.int64)
    for token, i in tok.get_vocab().items():
        lengths[i] = 0 if i in special_ids else len(token)
    return lengths


@torch.no_grad()
def perplexity(model: torch.nn.Module, shards: TokenRows, tok: Tokenizer, eos_id: int,
               max_rows: int, batch_size: int) -> dict[str, float]:
    byte_len = token_byte_lengths(tok, {eos_id})
    nll, tokens, nbytes = 0.0, 0, 0
    rows = min(max_rows, len(shards))
    for start in range(0, rows, batch_size):
        x, y = to_batch(*shards.rows(np.arange(start, min(start + batch_size, rows))))
        losses = F.cross_entropy(model(x).float().transpose(1, 2), y, reduction="none", ignore_index=IGNORE)
        mask = (y != eos_id) & (y != IGNORE)  # padding at the end of a shard is not text either
        nll += float(losses[mask].sum())
        tokens += int(mask.sum())
        nbytes += int(byte_len[y[mask].numpy()].sum())
    loss = nll / tokens
    return {"rows": rows, "tokens": tokens, "bytes": nbytes, "loss": loss,
            "perplexity": math.exp(loss), "bits_per_byte": nll / (math.log(2) * nbytes)}

"""Perplexity and bits per byte of a model on held-out token rows.

End-of-text and padding targets are left out of both the loss and the byte count: they mark document
boundaries, not text. A byte-level BPE token's string has one character per byte, so a
token's byte length is the length of its vocabulary entry.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

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


def summed_nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Summed cross-entropy of (b, t, vocab) logits over targets (IGNORE = not scored), taken
    over rows of the vocabulary: on CPU the (b, vocab, t) layout's kernel drifts (0.08 nats over
    678 tokens against float64, 5e-5 of the total), where this one stays within 1e-7 of the
    harness's log_softmax."""
    return float(
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
    )


@torch.no_grad()
def perplexity(
    model: torch.nn.Module, shards: TokenRows, tok: Tokenizer, eos_id: int, max_rows: int, batch_size: int
) -> dict[str, float]:
    byte_len = token_byte_lengths(tok, {eos_id})
    nll, tokens, nbytes = 0.0, 0, 0
    rows = min(max_rows, len(shards))
    for start in range(0, rows, batch_size):
        x, y = to_batch(*shards.rows(np.arange(start, min(start + batch_size, rows))))
        y = y.masked_fill(y == eos_id, IGNORE)  # end-of-text is a boundary, not text
        mask = y != IGNORE  # nor is the padding at the end of a shard
        nll += summed_nll(model(x).float(), y)
        tokens += int(mask.sum())
        nbytes += int(byte_len[y[mask].numpy()].sum())
    loss = nll / tokens
    return {
        "rows": rows,
        "tokens": tokens,
        "bytes": nbytes,
        "loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_byte": nll / (math.log(2) * nbytes),
    }


@torch.no_grad()
def text_perplexity(
    model, path: Path, batch_size: int = 8, max_tokens: int | None = None, logits_mb: int = 256
) -> dict[str, Any]:
    """Perplexity and bits per byte of `model` (an EvalModel) on a UTF-8 text file.

    As the harness's rolling log-likelihood: the text is cut into windows of the model's
    length, each predicted from the token before it (the harness's prefix token before the first), so
    every token is scored once. At most `logits_mb` MB of logits exist at a time."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"evaluation.text_file {path} not found; give a UTF-8 text file")
    text = path.read_text(encoding="utf-8")
    every = model.encode(text)
    tokens = every[:max_tokens]
    if not tokens:
        raise ValueError(f"{path} holds no text to score")
    inputs = [model.prefix_id, *tokens[:-1]]
    windows = []
    for s in range(0, len(tokens), model.max_length):
        e = min(s + model.max_length, len(tokens))
        lo = max(0, e - model.max_length)
        # A short last window is given the full window of tokens before its end as context;
        # only its own tokens are scored (-100 elsewhere).
        windows.append((inputs[lo:e], [-100] * (s - lo) + tokens[s:e]))
    nll = 0.0
    for start in range(0, len(windows), batch_size):
        group = windows[start : start + batch_size]
        width = max(len(x) for x, _ in group)
        x = torch.full((len(group), width), model.pad_id, dtype=torch.long)
        y = torch.full((len(group), width), -100, dtype=torch.long)
        for r, (inp, tgt) in enumerate(group):
            x[r, : len(inp)], y[r, : len(tgt)] = torch.tensor(inp), torch.tensor(tgt)
        nll += model.target_nll(x, y, logits_mb * 2**20)  # memory bounded by logits_mb, not by the vocabulary
    whole = len(tokens) == len(every)
    nbytes = len(text.encode("utf-8")) if whole else model.token_bytes(tokens)
    # The harness's wikitext figures count words as it does: pieces between runs of whitespace.
    words = len(re.split(r"\s+", text if whole else model.decode(tokens) if model.decode else text))
    return {
        "file": str(path),
        "tokens": len(tokens),
        "bytes": nbytes,
        "words": words,
        "loss": nll / len(tokens),
        "perplexity": math.exp(nll / len(tokens)),
        "bits_per_byte": nll / (math.log(2) * nbytes),
        "word_perplexity": math.exp(nll / words),
        "byte_perplexity": math.exp(nll / nbytes),
    }

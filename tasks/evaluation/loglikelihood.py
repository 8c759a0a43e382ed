"""Log-likelihood of continuations given contexts, tokenized as lm-evaluation-harness does.

The harness moves trailing whitespace of the context onto the continuation, encodes
context+continuation as one string, and takes the continuation to be the tokens past the
context's own encoding; an empty context is replaced by the end-of-text token. Inputs longer
than the model's context are cut from the left.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer


@dataclass(frozen=True)
class Request:
    context: str
    continuation: str


def encode_pair(tok: Tokenizer, context: str, continuation: str, eot_id: int) -> tuple[list[int], list[int]]:
    if context == "":
        return [eot_id], tok.encode(continuation, add_special_tokens=False).ids
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tok.encode(context + continuation, add_special_tokens=False).ids
    ctx = tok.encode(context, add_special_tokens=False).ids
    return ctx, whole[len(ctx):]


@torch.no_grad()
def loglikelihoods(model: torch.nn.Module, tok: Tokenizer, requests: list[Request], eot_id: int,
                   max_len: int, batch_size: int = 16) -> list[tuple[float, bool]]:
    """(sum of log-probabilities of the continuation, whether it is the greedy continuation)."""
    encoded = []
    for r in requests:
        ctx, cont = encode_pair(tok, r.context, r.continuation, eot_id)
        if not cont:
            raise ValueError(f"continuation {r.continuation!r} encodes to no tokens")
        whole = (ctx + cont)[-(max_len + 1):]
        encoded.append((whole[:-1], cont))
    # Longest first, so each padded batch wastes little and memory peaks at the start.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = len(encoded[idx[0]][0])
        batch = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            inp = encoded[i][0]
            batch[row, : len(inp)] = torch.tensor(inp)
        logprobs = F.log_softmax(model(batch).float(), dim=-1)
        for row, i in enumerate(idx):
            inp, cont = encoded[i]
            n = len(cont)
            # Positions len(inp)-n .. len(inp)-1 predict the n continuation tokens.
            lp = logprobs[row, len(inp) - n : len(inp)]
            target = torch.tensor(cont)
            ll = lp.gather(1, target[:, None]).sum().item()
            greedy = bool((lp.argmax(-1) == target).all())
            results[i] = (ll, greedy)
    return results

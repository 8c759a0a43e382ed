"""Log-likelihood of continuations given contexts, tokenized as lm-evaluation-harness does.

The harness moves trailing whitespace of the context onto the continuation, encodes
context+continuation as one string, and takes the continuation to be the tokens past the
context's own encoding; an empty context is replaced by the end-of-text token. Inputs longer
than the model's context are cut from the left. `score_rows` is the harness's own way of
scoring (one padded row per context+continuation); tasks/evaluation/shared_context.py is
the faster way that gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tasks.evaluation.shared_context import Scored

Encode = Callable[[str], list[int]]


def encode_continuations(
    encode: Encode, context: str, continuations: list[str], eot_id: int
) -> tuple[list[int], list[list[int]]]:
    """The harness's encode_pair for several continuations of one context, the context encoded once."""
    if context == "":
        return [eot_id], [encode(c) for c in continuations]
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:  # trailing whitespace belongs to the continuation
        context, continuations = context[:-n_spaces], [context[-n_spaces:] + c for c in continuations]
    ctx = encode(context)
    return ctx, [encode(context + c)[len(ctx) :] for c in continuations]


def encode_pair(encode: Encode, context: str, continuation: str, eot_id: int) -> tuple[list[int], list[int]]:
    ctx, (cont,) = encode_continuations(encode, context, [continuation], eot_id)
    return ctx, cont


@torch.no_grad()
def score_rows(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    pairs: list[tuple[list[int], list[int]]],
    max_len: int,
    batch_size: int = 16,
) -> list[Scored]:
    """Score each (context ids, continuation ids) as its own right-padded row, longest first."""
    encoded = []
    for ctx, cont in pairs:
        if not cont:
            raise ValueError("a continuation encodes to no tokens")
        whole = (ctx + cont)[-(max_len + 1) :]
        encoded.append((whole[:-1], cont))
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    results: list[Scored] = [Scored(0.0, False)] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = len(encoded[idx[0]][0])
        batch = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            inp = encoded[i][0]
            batch[row, : len(inp)] = torch.tensor(inp)
        logprobs = F.log_softmax(logits_fn(batch).float(), dim=-1)
        for row, i in enumerate(idx):
            inp, cont = encoded[i]
            # Positions len(inp)-n .. len(inp)-1 predict the n continuation tokens.
            lp = logprobs[row, len(inp) - len(cont) : len(inp)]
            target = torch.tensor(cont)
            results[i] = Scored(float(lp.gather(1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all()))
    return results

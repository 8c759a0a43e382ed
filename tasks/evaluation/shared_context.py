"""Log-likelihoods of all the choices of a question with its context computed once.

The tokens are exactly lm-evaluation-harness's (tasks/evaluation/loglikelihood.py
`encode_pair`): the model sees context ids then continuation ids, and the context ids are
the same for every choice. So each question needs its context run once:

- Crucible models pack a question into one row, the context then each continuation (less
  its last token), with positions restarting after the context and a mask that lets each
  continuation see only the context and itself (`GPT.packed_logits`).
- Hugging Face models run the contexts once (left-padded), keep their key/value cache,
  and run every continuation against its question's cache.

Questions are batched by length, longest first. A question whose context plus a
continuation exceeds the model's window falls back to the harness's left-truncated rows.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Encoded = tuple[list[int], list[list[int]]]  # context ids, continuation ids per choice


@dataclass(frozen=True)
class Scored:
    loglikelihood: float
    greedy: bool  # every continuation token is the model's argmax


def _score(logprobs: torch.Tensor, cont: list[int]) -> Scored:
    target = torch.tensor(cont)
    return Scored(float(logprobs.gather(1, target[:, None]).sum()), bool((logprobs.argmax(-1) == target).all()))


def fits(q: Encoded, max_length: int) -> bool:
    ctx, conts = q
    return len(ctx) + max(len(c) for c in conts) - 1 <= max_length


def _batches(order: list[int], sizes: list[int], token_budget: int) -> list[list[int]]:
    """Consecutive groups (longest first) whose padded size stays within `token_budget` tokens."""
    out, cur = [], []
    for i in order:
        if cur and sizes[cur[0]] * (len(cur) + 1) > token_budget:
            out.append(cur)
            cur = []
        cur.append(i)
    return out + ([cur] if cur else [])


@torch.no_grad()
def score_packed(model, questions: list[Encoded], token_budget: int = 8192) -> list[list[Scored]]:
    """Crucible GPT: one packed row per question."""
    rows = [ctx + [t for c in conts for t in c[:-1]] for ctx, conts in questions]
    order = sorted(range(len(questions)), key=lambda i: -len(rows[i]))
    results: list[list[Scored]] = [[] for _ in questions]
    for group in _batches(order, [len(r) for r in rows], token_budget):
        width = len(rows[group[0]])
        ids = torch.zeros(len(group), width, dtype=torch.long)
        positions = torch.zeros(len(group), width, dtype=torch.long)
        owner = torch.full((len(group), width), -2, dtype=torch.long)  # -1 context, j choice j, -2 padding
        for r, i in enumerate(group):
            ctx, conts = questions[i]
            ids[r, : len(rows[i])] = torch.tensor(rows[i])
            positions[r, : len(ctx)] = torch.arange(len(ctx))
            owner[r, : len(ctx)] = -1
            at = len(ctx)
            for j, c in enumerate(conts):
                n = len(c) - 1
                positions[r, at:at + n] = torch.arange(len(ctx), len(ctx) + n)
                owner[r, at:at + n] = j
                at += n
        idx = torch.arange(width)
        causal = idx[None, :, None] >= idx[None, None, :]
        same = (owner[:, :, None] == owner[:, None, :]) | (owner[:, None, :] == -1)
        mask = causal & same & (owner[:, None, :] != -2)
        mask |= torch.eye(width, dtype=torch.bool)[None]  # padding sees itself: no empty rows
        logits = model.packed_logits(ids, positions, mask)
        for r, i in enumerate(group):
            ctx, conts = questions[i]
            at = len(ctx)
            for c in conts:
                # The first token is predicted from the context's last position, the rest
                # from the continuation's own positions.
                pos = [len(ctx) - 1] + list(range(at, at + len(c) - 1))
                results[i].append(_score(F.log_softmax(logits[r, pos].float(), -1), c))
                at += len(c) - 1
    return results


@torch.no_grad()
def score_cached(model, questions: list[Encoded], pad_id: int, token_budget: int = 8192) -> list[list[Scored]]:
    """Hugging Face causal LM: contexts once with their key/value cache, then all continuations."""
    order = sorted(range(len(questions)), key=lambda i: -len(questions[i][0]))
    results: list[list[Scored]] = [[] for _ in questions]
    for group in _batches(order, [len(q[0]) for q in questions], token_budget):
        width = len(questions[group[0]][0])
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        attn = torch.zeros(len(group), width, dtype=torch.long)
        for r, i in enumerate(group):  # left padding: every context ends at the last column
            ctx = questions[i][0]
            ids[r, width - len(ctx):] = torch.tensor(ctx)
            attn[r, width - len(ctx):] = 1
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True)
        last = F.log_softmax(out.logits[:, -1].float(), -1)
        # Continuation rows: every choice with more than one token, against its question's cache.
        rows = [(r, j) for r, i in enumerate(group) for j, c in enumerate(questions[i][1]) if len(c) > 1]
        tails: dict[tuple[int, int], torch.Tensor] = {}
        if rows:
            cont_w = max(len(questions[group[r]][1][j]) - 1 for r, j in rows)
            cids = torch.full((len(rows), cont_w), pad_id, dtype=torch.long)
            for k, (r, j) in enumerate(rows):
                c = questions[group[r]][1][j][:-1]
                cids[k, : len(c)] = torch.tensor(c)
            src = torch.tensor([r for r, _ in rows])
            cache = out.past_key_values
            cache.batch_select_indices(src)
            cattn = torch.cat([attn[src], torch.ones(len(rows), cont_w, dtype=torch.long)], dim=1)
            # Padding columns repeat the row's last real position: counting on past it could pass
            # the model's window (a long context padded to another question's long continuation),
            # which learned position tables cannot look up. Padding comes last, so nothing real sees it.
            real = torch.tensor([len(questions[group[r]][1][j]) - 2 for r, j in rows])
            cpos = positions[src, -1:] + 1 + torch.minimum(torch.arange(cont_w)[None], real[:, None])
            cout = model(input_ids=cids, attention_mask=cattn, position_ids=cpos, **{_cache_arg(model): cache})
            logits = F.log_softmax(cout.logits.float(), -1)
            tails = {rj: logits[k] for k, rj in enumerate(rows)}
        for r, i in enumerate(group):
            for j, c in enumerate(questions[i][1]):
                lp = last[r : r + 1]
                if len(c) > 1:
                    lp = torch.cat([lp, tails[(r, j)][: len(c) - 1]])
                results[i].append(_score(lp, c))
    return results


def _cache_arg(model) -> str:
    """Newer transformers call the key/value cache argument `cache`, older `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def score_questions(model, questions: list[Encoded], max_length: int, packed: bool, pad_id: int,
                    fallback: Callable[[list[tuple[list[int], list[int]]]], list[Scored]]) -> list[list[Scored]]:
    """Every choice's score, in order; questions that overflow the window go to `fallback`
    (the harness's per-choice rows, left-truncated)."""
    inside = [i for i, q in enumerate(questions) if fits(q, max_length)]
    outside = [i for i, q in enumerate(questions) if not fits(q, max_length)]
    scored = (score_packed(model, [questions[i] for i in inside]) if packed
              else score_cached(model, [questions[i] for i in inside], pad_id))
    results: list[list[Scored]] = [[] for _ in questions]
    for i, s in zip(inside, scored):
        results[i] = s
    if outside:
        pairs = [(questions[i][0], c) for i in outside for c in questions[i][1]]
        flat = iter(fallback(pairs))
        for i in outside:
            results[i] = [next(flat) for _ in questions[i][1]]
    return results

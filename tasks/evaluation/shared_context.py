"""Log-likelihoods of all the choices of a question with its context computed once.

The tokens are exactly lm-evaluation-harness's (tasks/evaluation/loglikelihood.py
`encode_pair`): the model sees context ids then continuation ids, and the context ids are
the same for every choice. So each question needs its context run once:

- Crucible models pack a question into one row, the context then each continuation (less
  its last token), with positions restarting after the context and a mask that lets each
  continuation see only the context and itself (`GPT.packed_logits`).
- Hugging Face models run the contexts once, keep their key/value cache, and run every
  continuation against its question's cache. A prefix that many contexts share token for
  token (TruthfulQA's six fixed examples, an MMLU subject's line and few-shot examples) is run
  once, and each context's rest on top of its cache.

Questions are batched by length, longest first, a batch closed before its padding passes 15%.
A question whose context plus a continuation exceeds the model's window is cut on the left
exactly as the harness cuts it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

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


# A batch is closed early when padding would pass 15% of it, unless it is still small: on a CPU a
# forward pass of a few tokens is bound by reading the weights, so tiny batches cost more than padding.
MIN_FILL, MIN_BATCH_TOKENS = 0.85, 512


def _batches(order: list[int], sizes: list[int], token_budget: int, overhead: int = 0) -> list[list[int]]:
    """Consecutive groups (longest first) whose padded size, rows x (overhead + longest), stays
    within `token_budget`, and whose padding stays under 1 - MIN_FILL once past MIN_BATCH_TOKENS."""
    out, cur, real = [], [], 0
    for i in order:
        if cur:
            padded = sizes[cur[0]] * (len(cur) + 1)
            if ((overhead + sizes[cur[0]]) * (len(cur) + 1) > token_budget
                    or (real + sizes[i] < MIN_FILL * padded and sizes[cur[0]] * len(cur) >= MIN_BATCH_TOKENS)):
                out.append(cur)
                cur, real = [], 0
        cur.append(i)
        real += sizes[i]
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
        # Only the positions that predict a continuation token go through the output layer.
        keep = torch.zeros(len(group), width, dtype=torch.bool)
        wanted: list[list[list[int]]] = []
        for r, i in enumerate(group):
            ctx, conts = questions[i]
            keep[r, len(ctx) - 1] = True
            at, per_choice = len(ctx), []
            for c in conts:
                # The first token is predicted from the context's last position, the rest
                # from the continuation's own positions.
                per_choice.append([len(ctx) - 1] + list(range(at, at + len(c) - 1)))
                keep[r, at:at + len(c) - 1] = True
                at += len(c) - 1
            wanted.append(per_choice)
        logits = model.packed_logits(ids, positions, mask, keep)
        # Row of `logits` for (row r, position p): kept positions are numbered in row-major order.
        index = torch.full((len(group), width), -1, dtype=torch.long)
        index[keep] = torch.arange(int(keep.sum()))
        for r, i in enumerate(group):
            for c, pos in zip(questions[i][1], wanted[r]):
                results[i].append(_score(F.log_softmax(logits[index[r, pos]].float(), -1), c))
    return results


# Contexts that begin with at least this many identical tokens (TruthfulQA's fixed examples,
# MMLU's subject line and few-shot examples) have that prefix run once for all of them.
MIN_SHARED_PREFIX = 16


def _common_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def prefix_groups(contexts: list[list[int]], min_prefix: int = MIN_SHARED_PREFIX) -> list[tuple[int, list[int]]]:
    """(shared prefix length, context indices): contexts sorted by their tokens, and each run of
    neighbours that share at least `min_prefix` leading tokens made one group. Each context
    keeps at least its last token out of the prefix, as its logits score the first choice
    token. Contexts that share nothing long enough form one group with prefix 0."""
    groups: list[tuple[int, list[int]]] = []
    alone: list[int] = []
    cur: list[int] = []
    shared = 0

    def close() -> None:
        if len(cur) > 1:
            groups.append((shared, list(cur)))
        else:
            alone.extend(cur)

    for i in sorted(range(len(contexts)), key=lambda i: contexts[i]):
        ctx = contexts[i]
        if cur:
            p = min(shared, _common_length(contexts[cur[0]], ctx), len(ctx) - 1)
            if p >= min_prefix:
                cur.append(i)
                shared = p
                continue
            close()
        cur, shared = [i], len(ctx) - 1
    close()
    return groups + ([(0, alone)] if alone else [])


@torch.no_grad()
def score_cached(model, questions: list[Encoded], pad_id: int, token_budget: int = 8192,
                 min_prefix: int = MIN_SHARED_PREFIX) -> list[list[Scored]]:
    """Hugging Face causal LM: a prefix shared by many contexts once, each context's rest once
    on top of it, keeping the key/value cache, then all continuations against that cache."""
    results: list[list[Scored]] = [[] for _ in questions]
    # Only the last context position is scored: skip the output layer elsewhere when the model can.
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    cache_arg = _cache_arg(model)
    for shared, members in prefix_groups([q[0] for q in questions], min_prefix):
        if shared:
            prefix = torch.tensor([questions[members[0]][0][:shared]])
            out = model(input_ids=prefix, position_ids=torch.arange(shared)[None], use_cache=True, **keep)
            prefix_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            prefix_cache = out.past_key_values
        members = sorted(members, key=lambda i: -len(questions[i][0]))  # longest rest first
        rest = [questions[i][0][shared:] for i in members]
        for chunk in _batches(list(range(len(members))), [len(x) for x in rest], token_budget, overhead=shared):
            group = [members[k] for k in chunk]
            width = len(rest[chunk[0]])
            ids = torch.full((len(group), width), pad_id, dtype=torch.long)
            attn = torch.zeros(len(group), shared + width, dtype=torch.long)
            attn[:, :shared] = 1
            # Left padding sits between the prefix and the rest, so every context still ends at
            # the last column; positions count real tokens only.
            for r, k in enumerate(chunk):
                ids[r, width - len(rest[k]):] = torch.tensor(rest[k])
                attn[r, shared + width - len(rest[k]):] = 1
            positions = (attn.cumsum(-1) - 1).clamp(min=0)
            cache_kw = {}
            if shared:
                n = len(group)
                for layer, (keys, values) in zip(prefix_cache.layers, prefix_kv):  # the prefix, seen by every row
                    layer.keys, layer.values = keys.expand(n, -1, -1, -1), values.expand(n, -1, -1, -1)
                cache_kw = {cache_arg: prefix_cache}
            out = model(input_ids=ids, attention_mask=attn, position_ids=positions[:, shared:], use_cache=True,
                        **keep, **cache_kw)
            last = F.log_softmax(out.logits[:, -1].float(), -1)
            conts = [questions[i][1] for i in group]
            tails = _continuations(model, out.past_key_values, attn, positions, conts, pad_id, token_budget)
            for r, i in enumerate(group):
                for j, c in enumerate(questions[i][1]):
                    lp = last[r : r + 1]
                    if len(c) > 1:
                        lp = torch.cat([lp, tails[(r, j)][: len(c) - 1]])
                    results[i].append(_score(lp, c))
    return results


def _continuations(model, cache, attn: torch.Tensor, positions: torch.Tensor, conts: list[list[list[int]]],
                   pad_id: int, token_budget: int) -> dict[tuple[int, int], torch.Tensor]:
    """Log-probabilities along every choice of more than one token, run against its context's
    cache; choices are sorted by length and chunked, so a short one is not padded to the longest."""
    rows = sorted(((r, j) for r, cs in enumerate(conts) for j, c in enumerate(cs) if len(c) > 1),
                  key=lambda rj: -len(conts[rj[0]][rj[1]]))
    saved = [(layer.keys, layer.values) for layer in cache.layers]
    width = attn.shape[1]
    tails: dict[tuple[int, int], torch.Tensor] = {}
    for chunk in _batches(list(range(len(rows))), [len(conts[r][j]) - 1 for r, j in rows], token_budget,
                          overhead=width):
        crows = [rows[k] for k in chunk]
        cont_w = len(conts[crows[0][0]][crows[0][1]]) - 1
        cids = torch.full((len(crows), cont_w), pad_id, dtype=torch.long)
        for k, (r, j) in enumerate(crows):
            cids[k, : len(conts[r][j]) - 1] = torch.tensor(conts[r][j][:-1])
        src = torch.tensor([r for r, _ in crows])
        for layer, (keys, values) in zip(cache.layers, saved):  # this chunk's contexts, fresh each time
            layer.keys, layer.values = keys[src], values[src]
        cattn = torch.cat([attn[src], torch.ones(len(crows), cont_w, dtype=torch.long)], dim=1)
        # Padding columns repeat the row's last real position: counting on past it could pass
        # the model's window, which learned position tables cannot look up. Padding comes last,
        # so nothing real sees it.
        real = torch.tensor([len(conts[r][j]) - 2 for r, j in crows])
        cpos = positions[src, -1:] + 1 + torch.minimum(torch.arange(cont_w)[None], real[:, None])
        out = model(input_ids=cids, attention_mask=cattn, position_ids=cpos, **{_cache_arg(model): cache})
        logits = F.log_softmax(out.logits.float(), -1)
        tails.update({rj: logits[k] for k, rj in enumerate(crows)})
    return tails


def _cache_arg(model) -> str:
    """Newer transformers call the key/value cache argument `cache`, older `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def split_overflowing(question: Encoded, max_length: int) -> list[tuple[Encoded, list[int]]]:
    """A question too long for the window as questions that fit, each with its choice indices.

    The harness cuts an overlong input on the left: a choice of k tokens sees the last
    max_length + 1 - k context tokens. Choices of equal length see the same cut, so each
    length becomes one question with that context, and the result is the harness's exactly."""
    ctx, conts = question
    by_len: dict[int, list[int]] = {}
    for j, c in enumerate(conts):
        by_len.setdefault(len(c), []).append(j)
    out = []
    for k, js in by_len.items():
        cut = ctx[-(max_length + 1 - k):] if len(ctx) + k - 1 > max_length else ctx
        out.append(((cut, [conts[j] for j in js]), js))
    return out


def score_questions(model, questions: list[Encoded], max_length: int, packed: bool,
                    pad_id: int) -> list[list[Scored]]:
    """Every choice's score, in order; questions longer than the window are split by choice
    length (`split_overflowing`), which keeps the harness's left truncation exact."""
    parts: list[Encoded] = []
    where: list[list[int] | None] = []  # per part: its question's index, then its choice indices
    for i, q in enumerate(questions):
        longest = max(len(c) for c in q[1])
        if longest > max_length:  # the harness refuses this too
            raise ValueError(f"a choice of {longest} tokens is longer than the model's window of {max_length}")
        for part, js in ([(q, list(range(len(q[1]))))] if fits(q, max_length) else split_overflowing(q, max_length)):
            parts.append(part)
            where.append([i, *js])
    scored = score_packed(model, parts) if packed else score_cached(model, parts, pad_id)
    results: list[list[Scored]] = [[Scored(0.0, False)] * len(q[1]) for q in questions]
    for (i, *js), s in zip(where, scored):
        for j, x in zip(js, s):
            results[i][j] = x
    return results

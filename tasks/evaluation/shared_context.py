"""Log-likelihoods of all the choices of a question with its context computed once.

The tokens are exactly lm-evaluation-harness's (tasks/evaluation/loglikelihood.py
`encode_pair`): the model sees context ids then continuation ids, and the context ids are
the same for every choice. So each question needs its context run once:

- Each question is one row: the context, then each continuation less its last token, with
  positions restarting after the context and a mask that lets each continuation see only the
  context and itself (`_pack`). Crucible models take the mask directly (`GPT.packed_logits`);
  Hugging Face models take it as a 4D attention mask, and their output layer runs only on
  the columns that score a token (`logits_to_keep`).
- For Hugging Face models, a prefix that many contexts share token for token (TruthfulQA's six
  fixed examples, an MMLU subject's line and few-shot examples) is run once and cached, and
  each question's row is run on top of that cache.

Questions are batched by length, longest first, a batch closed before its padding passes 15%.
A question whose context plus a continuation exceeds the model's window is cut on the left
exactly as the harness cuts it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from transformers import DynamicCache
    from transformers.cache_utils import CacheLayerMixin

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
    out: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        if cur:
            padded = sizes[cur[0]] * (len(cur) + 1)
            if (overhead + sizes[cur[0]]) * (len(cur) + 1) > token_budget or (
                real + sizes[i] < MIN_FILL * padded and sizes[cur[0]] * len(cur) >= MIN_BATCH_TOKENS
            ):
                out.append(cur)
                cur, real = [], 0
        cur.append(i)
        real += sizes[i]
    return out + ([cur] if cur else [])


def _pack(questions: list[Encoded], group: list[int], offset: int = 0):
    """One row per question of `group`: its context then each continuation less its last token.

    Returns ids and positions (b, t); mask (b, t, offset + t) bool, what each token sees: the
    `offset` tokens of a prefix already run (every row shares it), its own context, and its own
    continuation; keep (b, t), the positions whose logits score a token; and, per question and
    choice, the row positions whose logits score that choice's tokens."""
    rows = [questions[i][0] + [t for c in questions[i][1] for t in c[:-1]] for i in group]
    b, width = len(group), max(len(r) for r in rows)
    ids = torch.zeros(b, width, dtype=torch.long)
    positions = torch.full((b, width), offset, dtype=torch.long)
    owner = torch.full((b, width), -2, dtype=torch.long)  # -1 context, j choice j, -2 padding
    keep = torch.zeros(b, width, dtype=torch.bool)
    wanted: list[list[list[int]]] = []
    for r, i in enumerate(group):
        ctx, conts = questions[i]
        ids[r, : len(rows[r])] = torch.tensor(rows[r])
        positions[r, : len(ctx)] = torch.arange(offset, offset + len(ctx))
        owner[r, : len(ctx)] = -1
        keep[r, len(ctx) - 1] = True
        at, per_choice = len(ctx), []
        for j, c in enumerate(conts):
            n = len(c) - 1
            positions[r, at : at + n] = torch.arange(offset + len(ctx), offset + len(ctx) + n)
            owner[r, at : at + n] = j
            keep[r, at : at + n] = True
            # The first token is predicted from the context's last position, the rest from
            # the continuation's own positions.
            per_choice.append([len(ctx) - 1, *range(at, at + n)])
            at += n
        wanted.append(per_choice)
    idx = torch.arange(width)
    causal = idx[None, :, None] >= idx[None, None, :]
    same = (owner[:, :, None] == owner[:, None, :]) | (owner[:, None, :] == -1)
    mask = causal & same & (owner[:, None, :] != -2)
    mask |= torch.eye(width, dtype=torch.bool)[None]  # padding sees itself: no empty rows
    if offset:
        mask = torch.cat([torch.ones(b, width, offset, dtype=torch.bool), mask], dim=2)
    return ids, positions, mask, keep, wanted


def _collect(
    logits: torch.Tensor,
    keep: torch.Tensor,
    wanted: list[list[list[int]]],
    questions: list[Encoded],
    group: list[int],
    results: list[list[Scored]],
) -> None:
    """Score each choice from `logits`, the kept positions' rows (n, vocab) in row-major order."""
    index = torch.full(keep.shape, -1, dtype=torch.long)
    index[keep] = torch.arange(int(keep.sum()))
    for r, i in enumerate(group):
        for c, pos in zip(questions[i][1], wanted[r]):
            results[i].append(_score(F.log_softmax(logits[index[r, pos]].float(), -1), c))


def _packed_batches(questions: list[Encoded], token_budget: int, overhead: int = 0) -> list[list[int]]:
    """Question indices batched by the length of their packed rows (`_pack`), longest first."""
    sizes = [len(ctx) + sum(len(c) - 1 for c in conts) for ctx, conts in questions]
    return _batches(sorted(range(len(questions)), key=lambda i: -sizes[i]), sizes, token_budget, overhead)


@torch.no_grad()
def score_packed(model, questions: list[Encoded], token_budget: int = 8192) -> list[list[Scored]]:
    """Crucible GPT: one packed row per question."""
    results: list[list[Scored]] = [[] for _ in questions]
    for group in _packed_batches(questions, token_budget):
        ids, positions, mask, keep, wanted = _pack(questions, group)
        # Only the positions that predict a continuation token go through the output layer.
        _collect(model.packed_logits(ids, positions, mask, keep), keep, wanted, questions, group, results)
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


def _kv_layers(cache: DynamicCache) -> list[tuple[CacheLayerMixin, torch.Tensor, torch.Tensor]]:
    """Each layer of a cache a prefix has just filled, with its keys and values."""
    from transformers.cache_utils import CacheLayerMixin

    out = []
    for layer in cache.layers:
        if not isinstance(layer, CacheLayerMixin) or layer.keys is None or layer.values is None:
            raise ValueError(f"a shared prefix needs keys and values in every cache layer, not {type(layer).__name__}")
        out.append((layer, layer.keys, layer.values))
    return out


@torch.no_grad()
def score_cached(
    model, questions: list[Encoded], token_budget: int = 8192, min_prefix: int = MIN_SHARED_PREFIX
) -> list[list[Scored]]:
    """Hugging Face causal LM: a prefix shared by many contexts run once and cached, then each
    question as one packed row (`_pack`) on top of it, through a 4D attention mask."""
    from transformers import DynamicCache

    results: list[list[Scored]] = [[] for _ in questions]
    params = inspect.signature(model.forward).parameters
    cache_arg = _cache_arg(model)
    head = hf_output_head(model)
    for shared, members in prefix_groups([q[0] for q in questions], min_prefix):
        cache_kw: dict = {"use_cache": False}
        if shared:
            prefix = torch.tensor([questions[members[0]][0][:shared]])
            prefix_cache = DynamicCache(config=model.config)
            model(
                input_ids=prefix,
                position_ids=torch.arange(shared)[None],
                use_cache=True,
                **{cache_arg: prefix_cache},
                **({"logits_to_keep": 1} if "logits_to_keep" in params else {}),
            )
            prefix_kv = _kv_layers(prefix_cache)
        rest = [(questions[i][0][shared:], questions[i][1]) for i in members]
        scored: list[list[Scored]] = [[] for _ in rest]
        for chunk in _packed_batches(rest, token_budget, overhead=shared):
            ids, positions, mask, keep, wanted = _pack(rest, chunk, offset=shared)
            if shared:
                for layer, keys, values in prefix_kv:  # fresh for each chunk
                    layer.keys, layer.values = (
                        keys.expand(len(chunk), -1, -1, -1),
                        values.expand(len(chunk), -1, -1, -1),
                    )
                cache_kw = {cache_arg: prefix_cache, "use_cache": True}
            # An additive float mask: every attention implementation reads it as it is given.
            add = torch.zeros(mask.shape).masked_fill_(~mask, torch.finfo(torch.float32).min)[:, None]
            inputs = {"input_ids": ids, "attention_mask": add, "position_ids": positions, **cache_kw}
            if head is not None:  # the output layer on exactly the positions that score a token
                logits = head(model.base_model(**inputs).last_hidden_state[keep])
            else:  # else on the columns some row scores, when the model allows it
                cols = keep.any(0).nonzero().squeeze(1)
                some = {"logits_to_keep": cols} if "logits_to_keep" in params else {}
                logits = model(**inputs, **some).logits[keep[:, cols] if some else keep]
            _collect(logits, keep, wanted, rest, chunk, scored)
        for i, s in zip(members, scored):
            results[i] = s
    return results


# Config fields of Hugging Face models that change the logits after the output head.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def hf_output_head(model) -> torch.nn.Module | None:
    """The output layer of a Hugging Face causal LM whose logits are just that layer applied to
    its base model's last hidden state; None for a model that rescales or caps them after."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    config = getattr(model, "config", None)
    if head is None or config is None or any(getattr(config, a, None) for a in LOGIT_TRANSFORMS):
        return None
    return head


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
        cut = ctx[-(max_length + 1 - k) :] if len(ctx) + k - 1 > max_length else ctx
        out.append(((cut, [conts[j] for j in js]), js))
    return out


def score_questions(model, questions: list[Encoded], max_length: int, packed: bool) -> list[list[Scored]]:
    """Every choice's score, in order; questions longer than the window are split by choice
    length (`split_overflowing`), which keeps the harness's left truncation exact."""
    parts: list[Encoded] = []
    where: list[list[int]] = []  # per part: its question's index, then its choice indices
    for i, q in enumerate(questions):
        longest = max(len(c) for c in q[1])
        if longest > max_length:  # the harness refuses this too
            raise ValueError(f"a choice of {longest} tokens is longer than the model's window of {max_length}")
        for part, js in [(q, list(range(len(q[1]))))] if fits(q, max_length) else split_overflowing(q, max_length):
            parts.append(part)
            where.append([i, *js])
    scored = score_packed(model, parts) if packed else score_cached(model, parts)
    results: list[list[Scored]] = [[Scored(0.0, False)] * len(q[1]) for q in questions]
    for (i, *js), s in zip(where, scored):
        for j, x in zip(js, s):
            results[i][j] = x
    return results

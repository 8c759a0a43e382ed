"""Scoring all choices of a question with its context computed once gives the reference
one-row-per-choice numbers (tasks/evaluation/loglikelihood.py score_rows)."""

from __future__ import annotations

import functools
import random

import pytest
import torch

from tasks.evaluation import shared_context
from tasks.evaluation.loglikelihood import score_rows
from tasks.evaluation.shared_context import Scored, fits, score_cached, score_packed, score_questions, split_overflowing


def make_questions(vocab: int, seed: int, max_ctx: int) -> list:
    """Contexts of 1..max_ctx tokens; 1 to 5 choices of 1 to 6 tokens (some questions all 1-token)."""
    rnd = random.Random(seed)
    qs = []
    for i, n_ctx in enumerate([max_ctx, 1, 7, 3, max_ctx - 2, 12, 5, 2]):
        n_choices = [4, 1, 2, 5, 3, 4, 2, 3][i]
        lengths = [1] * n_choices if i in (0, 3) else [rnd.randint(1, 6) for _ in range(n_choices)]
        qs.append(
            (
                [rnd.randrange(1, vocab) for _ in range(n_ctx)],
                [[rnd.randrange(1, vocab) for _ in range(n)] for n in lengths],
            )
        )
    return qs


def reference(logits_fn, questions, max_len: int) -> list[list[Scored]]:
    flat = iter(score_rows(logits_fn, [(ctx, c) for ctx, conts in questions for c in conts], max_len, batch_size=5))
    return [[next(flat) for _ in conts] for _, conts in questions]


def assert_same(got: list[list[Scored]], want: list[list[Scored]]) -> None:
    assert [len(g) for g in got] == [len(w) for w in want]
    for g_q, w_q in zip(got, want):
        for g, w in zip(g_q, w_q):
            assert g.loglikelihood == pytest.approx(w.loglikelihood, abs=1e-5)
            assert g.greedy == w.greedy


def n_batches(sizes: list[int], budget: int) -> int:
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    return len(shared_context._batches(order, sizes, budget))


@pytest.mark.parametrize("position", ["learned", "rope", "alibi", "sinusoidal"])
def test_packed_rows_equal_one_row_per_choice(make_gpt, position):
    model = make_gpt(40, 48, position)
    questions = make_questions(40, seed=1, max_ctx=20)
    rows = [len(ctx) + sum(len(c) - 1 for c in conts) for ctx, conts in questions]
    assert n_batches(rows, 64) >= 3
    calls = []
    packed = model.packed_logits
    model.packed_logits = lambda *a: calls.append(a[0].shape) or packed(*a)
    got = score_packed(model, questions, token_budget=64)
    assert len(calls) == n_batches(rows, 64) and all(b * t <= 64 or b == 1 for b, t in calls)
    assert_same(got, reference(model, questions, 48))


def test_a_greedy_continuation_is_flagged(make_gpt):
    model = make_gpt(40, 48)
    ctx = [3, 4, 5]
    with torch.no_grad():
        best = [int(model(torch.tensor([ctx]))[0, -1].argmax())]
        best.append(int(model(torch.tensor([ctx + best]))[0, -1].argmax()))
    wrong = [best[0], (best[1] + 1) % 40]
    got = score_packed(model, [(ctx, [best, wrong, best[:1]])])[0]
    assert [s.greedy for s in got] == [True, False, True]


@pytest.fixture(scope="module")
def gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def llama():
    """Rotary positions and grouped keys: the packed rows' restarting positions must reach
    the rotation, and the 4D mask the attention, as they reach GPT-2's learned table."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def gemma2():
    """Caps its logits after the output layer (and attends eagerly, adding the mask): scored
    through the whole model, on the columns some row scores."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Gemma2Config(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=32,
        final_logit_softcapping=2.0,
    )
    model = transformers.Gemma2ForCausalLM(cfg).eval()
    assert shared_context.hf_output_head(model) is None
    return model


@pytest.fixture(params=["gpt2", "llama", "gemma2"])
def hf(request):
    return request.getfixturevalue(request.param)


def test_cached_contexts_equal_one_row_per_choice(hf):
    questions = make_questions(50, seed=2, max_ctx=20)
    # The longest row (20 tokens, 1-token choices only) fills a batch of its own.
    assert n_batches([len(ctx) + sum(len(c) - 1 for c in conts) for ctx, conts in questions], 30) >= 3
    got = score_cached(hf, questions, token_budget=30)
    assert_same(got, reference(lambda ids: hf(ids).logits, questions, 32))


def test_cached_padding_never_counts_positions_past_the_window(gpt2):
    # One batch: a 28-token context with a 2-token choice (29 tokens) beside a 20-token context
    # with an 8-token choice; the short tail is padded to 7 columns, which must not reach position 32.
    questions = [(list(range(1, 29)), [[30, 31], [32]]), (list(range(1, 21)), [list(range(40, 48)), [9]])]
    assert all(fits(q, 32) for q in questions)
    got = score_cached(gpt2, questions, token_budget=10_000)
    assert_same(got, reference(lambda ids: gpt2(ids).logits, questions, 32))


def test_hf_eval_model_scores_through_the_cache_including_an_overlong_question(gpt2, wrap):
    questions = [*make_questions(50, seed=3, max_ctx=20), (list(range(1, 32)), [[5, 6, 7], [8]])]
    assert not fits(questions[-1], 32)
    model = wrap(gpt2, max_length=32, kind="hf")
    assert_same(model.score(questions), reference(model.logits, questions, 32))


def test_questions_past_the_window_are_scored_as_the_harness_truncates_them(make_gpt):
    model = make_gpt(40, 16)
    inside = ([1, 2, 3], [[4], [5, 6]])
    edge = (list(range(1, 13)), [[13, 14, 15, 16, 17], [18]])  # 12 + 5 - 1 = 16 tokens: just fits
    over = (list(range(1, 15)), [[20, 21, 22], [23], [24, 25, 26, 27], [28, 29, 30]])  # 14 + 4 - 1 = 17
    assert fits(edge, 16) and not fits(over, 16)
    got = score_questions(model, [inside, over, edge], 16, packed=True)
    # The overlong question is split by choice length and still equals the harness's
    # left-truncated one-row-per-choice scores.
    assert_same(got, reference(model, [inside, over, edge], 16))
    parts = split_overflowing(over, 16)
    assert sorted(len(cs[0]) for (_, cs), _ in parts) == [1, 3, 4]
    assert all(fits(p, 16) for p, _ in parts)
    with pytest.raises(ValueError, match="a choice of 17 tokens is longer than the model's window of 16"):
        score_questions(model, [([1, 2], [[3] * 17, [4]])], 16, packed=True)


def test_contexts_are_grouped_by_the_prefix_they_share():
    contexts = [[1, 2, 3, 4, 9], [5, 6], [1, 2, 3, 4, 8, 7], [1, 2, 3, 4], [5, 6, 7]]
    groups = shared_context.prefix_groups(contexts, min_prefix=3)
    # [1, 2, 3, 4] keeps its last token out of the prefix, so the group shares 3 tokens;
    # [5, 6] and [5, 6, 7] share only 2 and are run without a prefix.
    assert sorted((p, sorted(m)) for p, m in groups) == [(0, [1, 4]), (3, [0, 2, 3])]
    assert shared_context.prefix_groups([[1, 2, 3, 4, 5], [1, 2, 3, 4, 6]], min_prefix=3) == [(4, [0, 1])]
    assert shared_context.prefix_groups([[7, 7]], min_prefix=1) == [(0, [0])]


def test_a_shared_prefix_is_run_once_and_scores_as_whole_rows(hf):
    rnd = random.Random(4)
    prefix = [rnd.randrange(1, 50) for _ in range(9)]
    questions = [
        (
            prefix + [rnd.randrange(1, 50) for _ in range(n)],
            [[rnd.randrange(1, 50) for _ in range(rnd.randint(1, 5))] for _ in range(rnd.randint(1, 4))],
        )
        for n in (1, 6, 3, 12, 2, 8)
    ]
    questions += make_questions(50, seed=5, max_ctx=12)  # unrelated contexts beside them
    widths = []
    base = hf.base_model  # every forward pass, through the output layer or not, runs the base model
    forward = base.forward

    @functools.wraps(forward)
    def spy(*args, **kwargs):
        widths.append((kwargs["input_ids"] if "input_ids" in kwargs else args[0]).shape)
        return forward(*args, **kwargs)

    base.forward = spy
    try:
        got = score_cached(hf, questions, token_budget=40, min_prefix=4)
    finally:
        del base.forward
    assert widths.count(torch.Size([1, 9])) == 1  # the prefix, once for its six questions
    assert sum(b * t for b, t in widths) < sum(len(ctx) + sum(len(c) for c in conts) for ctx, conts in questions)
    assert_same(got, reference(lambda ids: hf(ids).logits, questions, 32))

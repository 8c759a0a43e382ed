"""Tokenization of (context, continuation) as the harness does it, and the reference
one-row-per-choice scoring."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tasks.evaluation.harness import encode_question
from tasks.evaluation.loglikelihood import encode_pair, score_rows


@pytest.fixture(scope="module")
def encode(tok):
    return lambda s: tok.encode(s, add_special_tokens=False).ids


def test_trailing_context_space_moves_to_the_continuation(encode):
    ctx, cont = encode_pair(encode, "the water ", "boils", eot_id=0)
    assert ctx == encode("the water")
    assert cont == encode("the water boils")[len(ctx) :]
    assert encode_pair(encode, "the water", " boils", eot_id=0) == (ctx, cont)
    assert encode_pair(encode, "", "boils", eot_id=7) == ([7], encode("boils"))


def test_continuation_is_the_whole_encoding_past_the_context():
    # A toy encoder that merges "ab" with a following " x": the harness's whole-then-split rule
    # gives the merged token to neither side (here: an empty continuation).
    def encode(s: str) -> list[int]:
        return [1] + [ord(c) for c in s[4:]] if s.startswith("ab x") else [ord(c) for c in s]

    assert encode_pair(encode, "a", " b", eot_id=0) == ([ord("a")], [ord(" "), ord("b")])
    assert encode_pair(encode, "ab", " x", eot_id=0) == ([ord("a"), ord("b")], [])
    with pytest.raises(ValueError, match=r"choice\(s\) \['x'\] encode to no tokens after the context"):
        encode_question(SimpleNamespace(encode=encode, eot_id=0), "ab", ["x", "y"])


@pytest.mark.parametrize("context", ["Question: What is 7 times 8?\nAnswer:", "Answer: ", "Q: water\n", "A \n ", ""])
def test_encode_question_equals_encode_pair_for_every_choice(encode, context):
    choices = ["54", "56 apples", "ice", "the water boils"]
    ctx, conts = encode_question(SimpleNamespace(encode=encode, eot_id=0), context, choices)
    for c, cont in zip(choices, conts):
        assert encode_pair(encode, context, " " + c, eot_id=0) == (ctx, cont)


def direct(model, ctx: list[int], cont: list[int], max_len: int) -> float:
    whole = (ctx + cont)[-(max_len + 1) :]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([whole[:-1]])), -1)[0]
    return sum(lp[len(whole) - 1 - len(cont) + j, t].item() for j, t in enumerate(cont))


def test_score_rows_matches_a_direct_computation(encode, make_gpt, tok):
    model = make_gpt(tok.get_vocab_size(), 16)
    pairs = [
        encode_pair(encode, "the water", " boils in the pot", 0),
        encode_pair(encode, "ice", " melts", 0),
        encode_pair(encode, "", "the", 0),
        # 25 tokens: cut from the left to the model's 16 (+1, the last target is not an input)
        (list(range(1, 21)), [21, 22, 23, 24, 25]),
    ]
    got = score_rows(model, pairs, max_len=16, batch_size=3)
    for (ctx, cont), s in zip(pairs, got):
        assert s.loglikelihood == pytest.approx(direct(model, ctx, cont, 16), abs=1e-4)
        assert s.loglikelihood < 0


def test_score_rows_greedy_flag_and_empty_continuation():
    # A model that always predicts token (input + 1).
    def logits_fn(ids):
        return torch.nn.functional.one_hot((ids + 1) % 10, 10).float() * 20

    got = score_rows(logits_fn, [([1, 2], [3, 4]), ([1, 2], [3, 5])], max_len=8)
    assert [s.greedy for s in got] == [True, False]
    assert got[0].loglikelihood > got[1].loglikelihood
    with pytest.raises(ValueError, match="continuation encodes to no tokens"):
        score_rows(logits_fn, [([1], [])], max_len=8)

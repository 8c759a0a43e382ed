"""Generation: the cached decoder against full forward passes, stops, truncation, batching, HF parity."""

from __future__ import annotations

import pytest
import torch

from models.config import ModelConfig
from models.gpt import GPT
from models.reference import greedy_generate
from tasks.evaluation.decoders import CrucibleDecoder, left_pad
from tasks.evaluation.generation import GenerationSettings, generate
from tasks.evaluation.models import load_eval_model

PROMPTS = [
    "Q: What is the boiling point of water?\nA:",
    "The sun",
    "Q: Why do cats purr when they are happy?",
    "rain falls",
    "Q: Who wrote it?\nA: I have no",
]


@pytest.fixture(scope="module")
def model(make_gpt, wrap, tok):
    return wrap(make_gpt(tok.get_vocab_size(), 64), max_length=64)


@pytest.mark.parametrize("position,kv_heads", [("learned", None), ("rope", 1), ("alibi", None), ("sinusoidal", None)])
def test_cached_decoding_gives_the_full_passes_logits_for_a_left_padded_batch(position, kv_heads):
    torch.manual_seed(0)
    gpt = GPT(ModelConfig(n_layer=2, n_head=2, d_model=16, position=position, n_kv_head=kv_heads), 50, 32).eval()
    rows = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    second_tokens, third_tokens = [20, 21, 22], {0: 30, 2: 31}  # the middle row finishes after two
    dec = CrucibleDecoder(gpt, pad_id=0)
    first = dec.start(rows)
    second = dec.step(torch.tensor(second_tokens))
    dec.keep(torch.tensor([0, 2]))
    third = dec.step(torch.tensor(list(third_tokens.values())))
    with torch.no_grad():
        for i, r in enumerate(rows):
            full = gpt(torch.tensor([[*r, second_tokens[i]]]))[0]
            torch.testing.assert_close(first[i], full[len(r) - 1], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(second[i], full[len(r)], atol=1e-5, rtol=1e-4)
        for j, (i, t) in enumerate(third_tokens.items()):
            full = gpt(torch.tensor([rows[i] + [second_tokens[i], t]]))[0]
            torch.testing.assert_close(third[j], full[-1], atol=1e-5, rtol=1e-4)


def test_left_padding_marks_the_real_tokens():
    ids, valid = left_pad([[1, 2, 3], [4]], pad_id=9)
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4]]
    assert valid.tolist() == [[True, True, True], [False, False, True]]


def test_greedy_generation_is_the_uncached_argmax_continuation(model):
    settings = GenerationSettings(until=(), max_gen_toks=12)
    for prompt in PROMPTS[:3]:
        got = generate(model, [prompt], settings)[0]
        ids = model.encode(prompt)
        ref = greedy_generate(model.module, ids, 12)[len(ids) :]
        if model.eot_id in ref:  # generation ends at the end-of-text token
            ref = ref[: ref.index(model.eot_id) + 1]
        assert got.tokens == len(ref)
        body = ref[:-1] if ref[-1] == model.eot_id else ref
        assert got.text == model.decode(body)


def test_batching_gives_the_same_text_as_one_prompt_at_a_time(model):
    settings = GenerationSettings(until=("\n\n",), max_gen_toks=10)
    alone = [generate(model, [p], settings, batch_size=1)[0] for p in PROMPTS]
    assert generate(model, PROMPTS, settings, batch_size=4) == alone
    assert generate(model, PROMPTS, settings, batch_size=2) == alone


def test_sampled_text_depends_on_the_seed_not_on_the_batching(model):
    s = GenerationSettings(until=(), max_gen_toks=8, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=7)
    one = generate(model, PROMPTS, s, batch_size=1)
    assert generate(model, PROMPTS, s, batch_size=5) == one
    other = generate(model, PROMPTS, GenerationSettings(**{**s.__dict__, "seed": 8}), batch_size=5)
    assert [g.text for g in other] != [g.text for g in one]
    greedy = generate(model, PROMPTS, GenerationSettings(until=(), max_gen_toks=8))
    assert [g.text for g in greedy] != [g.text for g in one]


def test_a_stop_sequence_ends_the_row_and_is_cut_from_the_text(model):
    free = generate(model, PROMPTS, GenerationSettings(until=(), max_gen_toks=10))
    for prompt, g in zip(PROMPTS, free):
        if g.stop == "eos" or len(g.text) < 4:
            continue
        stop = g.text[2:4]  # a piece of what it will generate anyway
        got = generate(model, [prompt], GenerationSettings(until=(stop,), max_gen_toks=10))[0]
        assert got.stop == "until" and got.text == g.text[: g.text.find(stop)]
        assert got.tokens < g.tokens or stop in model.decode(model.encode(g.text)[-1:])
        break
    else:
        pytest.fail("no free generation long enough to take a stop sequence from")


def test_max_gen_toks_bounds_the_length(model):
    gens = generate(model, PROMPTS, GenerationSettings(until=(), max_gen_toks=3))
    assert all(g.tokens <= 3 for g in gens)
    assert any(g.stop == "length" and g.tokens == 3 for g in gens)


def test_a_long_prompt_is_cut_from_the_left_to_leave_room_for_the_generation(model):
    long = " ".join(["the water boils at one hundred degrees"] * 30)
    settings = GenerationSettings(until=(), max_gen_toks=8)
    g = generate(model, [long], settings)[0]
    ids = model.encode(long)
    assert g.prompt_tokens == 64 - 8 and g.truncated == len(ids) - 56 > 0
    ref = greedy_generate(model.module, ids[-56:], 8)[56:]
    assert g.text == model.decode(ref[: ref.index(model.eot_id)] if model.eot_id in ref else ref)


def test_a_window_smaller_than_max_gen_toks_generates_at_most_half_of_it(model):
    g = generate(model, ["The sun"], GenerationSettings(until=(), max_gen_toks=500))[0]
    assert g.tokens <= 32 and g.prompt_tokens <= 32


def test_hugging_face_generation_matches_its_own_generate(hf_folder):
    model = load_eval_model(hf_folder("causal_lm"))
    ours = generate(model, PROMPTS, GenerationSettings(until=(), max_gen_toks=10), batch_size=3)
    for prompt, g in zip(PROMPTS, ours):
        ids = torch.tensor([model.encode(prompt)])
        out = model.module.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=0
        )[0, ids.shape[1] :].tolist()
        if 0 in out:
            out = out[: out.index(0)]
        assert g.text == model.decode(out)

"""Perplexity and bits per byte, on token rows and on a text file."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from tasks.evaluation.perplexity import perplexity, summed_nll, text_perplexity, token_byte_lengths
from tasks.tokenization.reader import TokenRows


class Uniform(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, x):
        return torch.zeros(*x.shape, self.vocab)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tok):
    vocab, eos = tok.get_vocab_size(), tok.token_to_id("<|endoftext|>")
    ids = tok.encode("the water boils in the pot.").ids
    row = np.array([*ids, eos, *ids][:9], dtype=np.uint16)
    shards = TokenRows.from_arrays([np.stack([row, row])])
    result = perplexity(Uniform(vocab), shards, tok, eos, max_rows=10, batch_size=1)
    targets = [t for t in row[1:] if t != eos] * 2
    assert result["rows"] == 2 and result["tokens"] == len(targets)
    assert result["perplexity"] == pytest.approx(vocab, rel=1e-5)
    nbytes = int(token_byte_lengths(tok, {eos})[targets].sum())
    assert result["bytes"] == nbytes == 2 * len(tok.decode([int(t) for t in row[1:] if t != eos]).encode())
    assert result["bits_per_byte"] == pytest.approx(len(targets) * math.log2(vocab) / nbytes)


def test_text_perplexity_of_a_uniform_model(tok, wrap, eval_root):
    vocab, path = tok.get_vocab_size(), eval_root / "text.txt"
    model = wrap(Uniform(vocab), max_length=32)
    n_tokens, n_bytes = len(model.encode(path.read_text())), len(path.read_bytes())
    assert n_tokens > 3 * 32  # several windows, the last one partial
    result = text_perplexity(model, path, batch_size=3)
    assert (result["tokens"], result["bytes"]) == (n_tokens, n_bytes)
    assert result["perplexity"] == pytest.approx(vocab, rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(n_tokens * math.log2(vocab) / n_bytes)
    # The harness's wikitext figures: summed NLL over words (split on whitespace runs) and over bytes.
    words = len(re.split(r"\s+", path.read_text()))
    assert result["words"] == words
    assert result["word_perplexity"] == pytest.approx(math.exp(n_tokens * math.log(vocab) / words), rel=1e-5)
    assert result["byte_perplexity"] == pytest.approx(2 ** result["bits_per_byte"], rel=1e-9)
    # Cut short, the bytes are those of the scored tokens.
    short = text_perplexity(model, path, max_tokens=40)
    assert short["tokens"] == 40 and short["bytes"] == model.token_bytes(model.encode(path.read_text())[:40])


def harness_windows(tokens: list[int], prefix: int, max_len: int):
    """lm-eval 0.4.13's get_rolling_token_windows(context_len=1): (model input, predicted tokens);
    the last len(predicted) positions of the input score them."""
    first = min(max_len, len(tokens))
    yield [prefix, *tokens[: first - 1]], tokens[:first]
    done = first
    while done < len(tokens):
        end = done + min(len(tokens) - done, max_len)
        yield tokens[end - max_len - 1 : end - 1], tokens[done:end]
        done = end


@pytest.mark.parametrize("max_tokens", [None, 20, 33, 64])  # a partial last window, one window, 32 + 1, 2 x 32
def test_text_perplexity_scores_the_harness_rolling_windows(tok, wrap, make_gpt, eval_root, max_tokens):
    path = eval_root / "text.txt"
    model = wrap(make_gpt(tok.get_vocab_size(), 32), max_length=32)
    tokens = model.encode(path.read_text())[:max_tokens]
    # A partial last window sees the 32 tokens before its end; only its own are scored.
    assert max_tokens or len(tokens) % 32
    nll = 0.0
    for inp, pred in harness_windows(tokens, model.eot_id, 32):
        with torch.no_grad():
            lp = torch.log_softmax(model.logits(torch.tensor([inp])), -1)[0, len(inp) - len(pred) :]
        nll -= float(lp.gather(1, torch.tensor(pred)[:, None]).sum())
    result = text_perplexity(model, path, batch_size=4, max_tokens=max_tokens)
    assert result["tokens"] == len(tokens)
    assert result["loss"] * result["tokens"] == pytest.approx(nll, rel=1e-5)


def test_text_perplexity_refuses_a_missing_or_empty_file(tok, wrap, tmp_path):
    model = wrap(Uniform(tok.get_vocab_size()), max_length=8)
    with pytest.raises(FileNotFoundError, match=r"evaluation.text_file .*absent.txt not found"):
        text_perplexity(model, tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match=r"empty\.txt holds no text to score"):
        text_perplexity(model, tmp_path / "empty.txt")


def _hf_model(arch: str, vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=32, n_embd=16, n_layer=2, n_head=2)).eval()
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=32,
            tie_word_embeddings=False,
        )
    ).eval()


@pytest.mark.parametrize("arch", ["crucible", "gpt2", "llama"])
def test_text_perplexity_holds_a_bounded_slice_of_logits_and_scores_the_same(tok, wrap, make_gpt, eval_root, arch):
    path, vocab = eval_root / "text.txt", tok.get_vocab_size()
    module = make_gpt(vocab, 32) if arch == "crucible" else _hf_model(arch, vocab)
    model = wrap(module, max_length=32, kind="crucible" if arch == "crucible" else "hf")
    whole = text_perplexity(model, path, batch_size=4, logits_mb=1024)
    head = module.head if arch == "crucible" else module.get_output_embeddings()
    widest = []
    original = torch.nn.functional.linear

    def counting_linear(x, w, b=None):
        if w.shape[0] == vocab:  # the output head
            widest.append(x.shape[0] * x.shape[1])
        return original(x, w, b)

    x = torch.tensor([model.encode(path.read_text())[:32]] * 4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "linear", counting_linear)
        sliced = text_perplexity(model, path, batch_size=4, logits_mb=1)
        widest.clear()
        nll = model.target_nll(x, x.clone(), 4 * 5 * vocab * 4)  # room for the logits of 5 positions x 4 rows
    assert len(widest) == 7 and max(widest) <= 4 * 5  # 32 positions in 7 slices, never more at once
    assert head.weight.shape[0] == vocab
    assert sliced["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(model.logits(x).float().transpose(1, 2), x, reduction="sum")
    assert nll == pytest.approx(float(full), rel=1e-6)


def test_missing_real_inputs_fall_back_to_the_bundled_samples_and_say_so(tmp_path):
    from tasks.evaluation.config import EvaluationConfig
    from tasks.evaluation.evaluate import substituted_inputs

    real = tmp_path / "benchmarks"
    cfg = EvaluationConfig(benchmarks_dir=str(real), text_file=str(tmp_path / "wiki.txt"))
    samples = cfg.benchmarks_root()
    assert samples is not None and (samples / "hellaswag" / "validation.jsonl").is_file()  # the repository's
    assert cfg.text_path() == samples / "text.txt"
    said = substituted_inputs(cfg)
    assert set(said) == {"benchmarks_dir", "text_file"} and str(real) in said["benchmarks_dir"]
    assert all(f.startswith(str(samples)) for f in cfg.benchmark_files())
    # Once the real files exist they are used, and nothing is said.
    (real / "hellaswag").mkdir(parents=True)
    (tmp_path / "wiki.txt").write_text("text")
    assert cfg.benchmarks_root() == real and cfg.text_path() == tmp_path / "wiki.txt"
    assert substituted_inputs(cfg) == {}
    # With samples_dir null a missing folder stays missing: the error names it.
    strict = EvaluationConfig(benchmarks_dir=str(tmp_path / "absent"), samples_dir=None)
    assert strict.benchmarks_root() == tmp_path / "absent"


def test_summed_nll_stays_within_1e6_of_float64_at_a_real_vocabulary():
    # The (b, vocab, t) layout of cross_entropy drifted 3e-6 of the total here; the harness's
    # figures are matched to 1e-6 only when each row is reduced over the vocabulary.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 700, 49152, generator=gen) * 3
    targets = torch.randint(0, 49152, (1, 700), generator=gen)
    targets[0, :5] = -100  # not scored
    exact = float(torch.nn.functional.cross_entropy(logits[0].double(), targets[0], ignore_index=-100, reduction="sum"))
    assert abs(summed_nll(logits, targets) - exact) / exact < 1e-6

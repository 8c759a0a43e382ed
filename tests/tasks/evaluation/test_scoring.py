import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from models.config import ModelConfig
from models.gpt import GPT
from tasks.evaluation.loglikelihood import Request, encode_pair, loglikelihoods
from tasks.evaluation.perplexity import perplexity, token_byte_lengths
from tasks.tokenization.bpe import train_on_texts
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.reader import TokenRows


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_on_texts(["the cat sat on the mat. the dog sat on the log."] * 50,
                          TokenizationConfig(vocab_size=300, min_frequency=1))


def test_trailing_context_space_moves_to_the_continuation(tok):
    ctx, cont = encode_pair(tok, "the cat ", "sat", eot_id=0)
    assert ctx == tok.encode("the cat").ids
    assert cont == tok.encode("the cat sat").ids[len(ctx):]
    assert encode_pair(tok, "", "sat", eot_id=0) == ([0], tok.encode("sat").ids)


def test_loglikelihood_matches_a_direct_computation(tok):
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, d_model=16), tok.get_vocab_size(), 32).eval()
    reqs = [Request("the cat", " sat on the mat."), Request("the dog", " sat"), Request("", "the")]
    got = loglikelihoods(model, tok, reqs, eot_id=0, max_len=32, batch_size=2)
    for req, (ll, greedy) in zip(reqs, got):
        ctx, cont = encode_pair(tok, req.context, req.continuation, 0)
        full = torch.tensor([ctx + cont])
        with torch.no_grad():
            lp = torch.log_softmax(model(full[:, :-1]), -1)[0]
        expected = sum(lp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))
        assert ll == pytest.approx(expected, abs=1e-4)
        assert isinstance(greedy, bool)


class Uniform(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, x):
        return torch.zeros(*x.shape, self.vocab)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tok):
    vocab, eos = tok.get_vocab_size(), tok.token_to_id("<|endoftext|>")
    ids = tok.encode("the cat sat on the mat.").ids
    row = np.array((ids + [eos] + ids)[:9], dtype=np.uint16)
    shards = TokenRows.from_arrays([np.stack([row, row])])
    result = perplexity(Uniform(vocab), shards, tok, eos, max_rows=10, batch_size=1)
    targets = [t for t in row[1:] if t != eos] * 2
    assert result["tokens"] == len(targets)
    assert result["perplexity"] == pytest.approx(vocab, rel=1e-5)
    nbytes = int(token_byte_lengths(tok, {eos})[targets].sum())
    assert nbytes == 2 * len(tok.decode([int(t) for t in row[1:] if t != eos]).encode())
    assert result["bits_per_byte"] == pytest.approx(len(targets) * math.log2(vocab) / nbytes)

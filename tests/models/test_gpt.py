import pytest
import torch
from pydantic import ValidationError

from models.config import ModelConfig
from models.gpt import GPT, lm_loss

CFG = ModelConfig(n_layer=2, n_head=4, d_model=32)


def test_output_shape_and_tied_embeddings():
    model = GPT(CFG, vocab_size=100, seq_len=16)
    assert model(torch.randint(0, 100, (3, 16))).shape == (3, 16, 100)
    assert model.head.weight is model.tok_emb.weight


def test_causal_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = GPT(CFG, vocab_size=50, seq_len=12).eval()
    x = torch.randint(0, 50, (1, 12))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % 50
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-6)
    assert not torch.allclose(a[0, 8:], b[0, 8:])


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(CFG, vocab_size=64, seq_len=16)
    data = torch.randint(0, 64, (4, 17))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = lm_loss(model(data[:, :-1]), data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="exceeds the model's context"):
        GPT(CFG, vocab_size=10, seq_len=4)(torch.zeros(1, 5, dtype=torch.long))


def test_heads_must_divide_width():
    with pytest.raises(ValidationError, match="divisible by n_head"):
        ModelConfig(d_model=30, n_head=4)

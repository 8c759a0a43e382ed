"""The fused head + loss must equal the plain logits -> cross-entropy path, value and gradients."""
import pytest
import torch
import torch.nn.functional as F

import models.fused_loss as fused
from models.fused_loss import linear_cross_entropy
from models.gpt import lm_loss
from tests.models.test_gpt import _loss_and_grads, _model


def _plain_and_fused(hidden, weight, targets):
    out = []
    for fn in (lambda: F.cross_entropy((hidden @ weight.t()).float().reshape(-1, weight.shape[0]),
                                       targets.reshape(-1)),
               lambda: linear_cross_entropy(hidden, weight, targets)):
        hidden.grad = weight.grad = None
        loss = fn()
        (loss * 3.0).backward()  # a non-unit upstream gradient must scale both gradients
        out.append((loss.detach(), hidden.grad.clone(), weight.grad.clone()))
    return out


@pytest.mark.parametrize("chunk_bytes", [fused.CHUNK_BYTES, 4 * 50 * 7])  # one chunk; chunks of 7 rows
def test_matches_plain_cross_entropy_with_ignored_targets(monkeypatch, chunk_bytes):
    monkeypatch.setattr(fused, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(0)
    hidden = torch.randn(3, 20, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (3, 20))
    targets[0, :4] = -100  # ignored positions contribute neither loss nor gradient
    (lp, hp, wp), (lf, hf, wf) = _plain_and_fused(hidden, weight, targets)
    assert torch.allclose(lp, lf, atol=1e-5)
    assert torch.allclose(hp, hf, atol=1e-6) and torch.allclose(wp, wf, atol=1e-6)
    assert hf[0, :4].abs().max() == 0
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(hidden, weight, targets), lp, atol=1e-5)


def test_bf16_stays_close_to_fp32():
    torch.manual_seed(0)
    hidden, weight = torch.randn(40, 16), torch.randn(50, 16)
    targets = torch.randint(0, 50, (40,))
    ref = linear_cross_entropy(hidden, weight, targets)
    h16, w16 = hidden.bfloat16().requires_grad_(), weight.bfloat16().requires_grad_()
    loss = linear_cross_entropy(h16, w16, targets)
    loss.backward()
    assert loss.dtype == torch.float32 and abs(loss.item() - ref.item()) < 0.05
    assert h16.grad.dtype == torch.bfloat16 and w16.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["gpt2", "untied"])
def test_model_loss_path_equals_logits_path(name):
    """model(x, targets) (training) and lm_loss(model(x), targets) agree, tied weights included."""
    model = _model(name)
    data = torch.randint(0, 64, (2, 17))
    x, y = data[:, :-1], data[:, 1:]
    (l1, g1), (l2, g2) = _loss_and_grads(model, lambda: lm_loss(model(x), y), lambda: model(x, y))
    assert l1 == pytest.approx(l2, abs=1e-5)
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-6), n

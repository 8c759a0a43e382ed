"""The fused head + loss must equal the plain logits -> cross-entropy path, value and gradients."""

import pytest
import torch
import torch.nn.functional as F

import models.fused_loss as fused
from models.fused_loss import linear_cross_entropy
from models.reference import lm_loss
from tests.models.test_gpt import _loss_and_grads, _model


def _plain_and_fused(hidden, weight, targets):
    out = []
    for fn in (
        lambda: F.cross_entropy((hidden @ weight.t()).float().reshape(-1, weight.shape[0]), targets.reshape(-1)),
        lambda: linear_cross_entropy(hidden, weight, targets),
    ):
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


def _reference_grads(hidden, weight, targets, z_loss=0.0):
    """fp32 loss and gradients of the plain logits -> F.cross_entropy path (+ z-loss)."""
    h = hidden.detach().float().requires_grad_()
    w = weight.detach().float().requires_grad_()
    logits = h @ w.t()
    loss = F.cross_entropy(logits, targets, ignore_index=-100)
    if z_loss:
        keep = targets != -100
        loss = loss + z_loss * (torch.logsumexp(logits, -1).square() * keep).sum() / keep.sum()
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _rel_err(a, b):
    return ((a.float() - b).norm() / b.norm()).item()


# Tolerances sit between what the fused path reaches and what a cast before the loss scale
# (fp16: 2.5e-3) or bf16 accumulation over 16 chunks (5.2e-3) gives on this case.
@pytest.mark.parametrize(
    "dtype,loss_scale,tol", [(torch.float32, 1.0, 1e-5), (torch.bfloat16, 1.0, 4e-3), (torch.float16, 2.0**16, 1e-3)]
)
def test_gradients_equal_cross_entropy_in_each_precision(monkeypatch, dtype, loss_scale, tol):
    """Many tokens make each logit's gradient tiny (softmax / count): in fp16 those values sit
    below the normal range unless the loss scale is applied before the cast, which the
    fused path does in fp32. Its weight gradient is accumulated in fp32 over chunks."""
    monkeypatch.setattr(fused, "CHUNK_BYTES", 4 * 300 * 512)  # 16 chunks of 512 tokens
    torch.manual_seed(0)
    n, vocab, d = 8192, 300, 32
    hidden, weight = torch.randn(n, d) * 0.5, torch.randn(vocab, d) * 0.5
    targets = torch.randint(0, vocab, (n,))
    targets[:100] = -100
    ref_loss, ref_h, ref_w = _reference_grads(hidden, weight, targets)
    h = hidden.to(dtype).requires_grad_()
    w = weight.to(dtype).requires_grad_()
    loss = linear_cross_entropy(h, w, targets)
    (loss * loss_scale).backward()
    assert loss.dtype == torch.float32 and h.grad.dtype == dtype and w.grad.dtype == dtype
    assert abs(loss.item() - ref_loss.item()) < max(10 * tol, 1e-4)
    assert _rel_err(h.grad.float() / loss_scale, ref_h) < tol
    assert _rel_err(w.grad.float() / loss_scale, ref_w) < tol
    assert torch.isfinite(h.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.parametrize("chunk_bytes", [fused.CHUNK_BYTES, 4 * 50 * 7])
def test_z_loss_value_and_gradients(monkeypatch, chunk_bytes):
    monkeypatch.setattr(fused, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(1)
    hidden, weight = torch.randn(60, 16), torch.randn(50, 16)
    targets = torch.randint(0, 50, (60,))
    targets[:5] = -100
    ref_loss, ref_h, ref_w = _reference_grads(hidden, weight, targets, z_loss=1e-2)
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = linear_cross_entropy(h, w, targets, z_loss=1e-2)
    loss.backward()
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-5)
    assert loss.item() > linear_cross_entropy(hidden, weight, targets).item()  # the penalty counts
    assert _rel_err(h.grad, ref_h) < 1e-5 and _rel_err(w.grad, ref_w) < 1e-5
    with torch.no_grad():
        assert linear_cross_entropy(hidden, weight, targets, z_loss=1e-2).item() == pytest.approx(
            ref_loss.item(), abs=1e-5
        )


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

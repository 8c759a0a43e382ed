"""Output projection and next-token cross-entropy in one pass, a chunk of tokens at a time.

Why: with a 50k vocabulary the logits of a batch are the largest tensors in training
(512 tokens x 50,257 x 4 bytes = 103 MB), and the plain path writes and re-reads them
several times (logits, log-softmax, its gradient, the gradient of the logits). Here the
loss is the last thing computed, so its gradient with respect to the logits is known in
the forward pass: softmax minus one-hot. Each chunk of logits is turned into that
gradient in place and immediately folded into the gradients of the hidden states and
the head weight, so no full-size logits tensor ever exists. The FLOPs are the same as
the plain path; what is saved is memory traffic and fresh-page faults, and memory
stays bounded by the chunk size.
"""
from __future__ import annotations

import torch

# Tokens per chunk: a chunk's fp32 logits stay under this many bytes (512 tokens at a 50k
# vocabulary), which bounds memory while keeping the matrix products large enough to be
# efficient (measured on CPU: fewer, larger chunks were faster down to one chunk of 512).
CHUNK_BYTES = 128 * 2**20


def _chunk_rows(vocab: int) -> int:
    return max(16, CHUNK_BYTES // (4 * vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    # Logits are computed transposed, (vocab, tokens) = weight @ hidden.T: on CPU BLAS this
    # product ran ~1.6x faster than hidden @ weight.T, and every later step can use it as is.
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                ignore_index: int) -> torch.Tensor:
        valid = targets != ignore_index
        count = max(int(valid.sum()), 1)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        step = _chunk_rows(weight.shape[0])
        for start in range(0, hidden.shape[0], step):
            h = hidden[start:start + step]
            t = targets[start:start + step].clamp(min=0)  # ignored rows are masked below
            keep = valid[start:start + step].float()
            cols = torch.arange(h.shape[0], device=h.device)
            logits_t = (weight @ h.t()).float()  # (vocab, chunk)
            lse = torch.logsumexp(logits_t, dim=0)
            total += ((lse - logits_t[t, cols]) * keep).sum()
            # d(loss)/d(logits) = (softmax - onehot) / count, written over the logits.
            grad_t = logits_t.sub_(lse).exp_()
            grad_t[t, cols] -= 1.0
            grad_t.mul_(keep / count)
            grad_t = grad_t.to(hidden.dtype)
            grad_hidden[start:start + step] = grad_t.t() @ weight
            grad_weight = grad_t @ h if grad_weight is None else grad_weight.addmm_(grad_t, h)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total / count

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        # In place: these buffers are used once, and a fresh copy of the (vocab, d) weight
        # gradient would cost another large allocation.
        return grad_hidden.mul_(grad_out), grad_weight.mul_(grad_out), None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, ignoring `ignore_index`.

    hidden (..., d), weight (vocab, d), targets (...). Logits are accumulated in fp32.
    Without gradients (evaluation) it only computes the loss, still chunked.
    """
    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(h, weight, t, ignore_index)
    valid = t != ignore_index
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    step = _chunk_rows(weight.shape[0])
    for start in range(0, h.shape[0], step):
        logits = (h[start:start + step] @ weight.t()).float()
        total += torch.nn.functional.cross_entropy(
            logits, t[start:start + step], ignore_index=ignore_index, reduction="sum")
    return total / max(int(valid.sum()), 1)

"""Output projection and next-token cross-entropy in one pass, a chunk of tokens at a time.

Why: with a 50k vocabulary the logits of a batch are the largest tensors in training
(512 tokens x 50,257 x 4 bytes = 103 MB), and the plain path writes and re-reads them
several times (logits, log-softmax, its gradient, the gradient of the logits). Here the
loss is the last thing computed, so its gradient with respect to the logits is known in
the forward pass: softmax minus one-hot. Each chunk of logits is turned into that
gradient in place and immediately folded into the gradients of the hidden states and
the head weight, so no full-size logits tensor ever exists. The FLOPs are the same as
the plain path; what is saved is memory traffic, and memory stays bounded by the chunk.

Precision. The upstream gradient (which carries fp16's loss scale) is only known in the
backward pass, so the forward pass keeps the unscaled gradients in a form that cannot
underflow, and the scale and the 1/count are applied in fp32 before the final cast:
- the head's weight gradient is accumulated over chunks in fp32, whatever the dtype;
- fp16 inputs do the gradient products in fp32 (fp16's 6e-8 floor would flush small
  softmax terms before the loss scale could lift them); bf16 has fp32's range, so its
  products stay in bf16 with fp32 accumulation inside the matmul.
The token count stays a device tensor: no host sync in the forward pass.
"""

from __future__ import annotations

import torch

# Tokens per chunk: a chunk's fp32 logits stay under this many bytes (667 tokens at a 50k
# vocabulary), which bounds memory while keeping the matrix products large enough to be
# efficient (measured on CPU: fewer, larger chunks were faster down to one chunk of 512).
CHUNK_BYTES = 128 * 2**20


def _chunk_rows(vocab: int) -> int:
    return max(16, CHUNK_BYTES // (4 * vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    # Logits are computed transposed, (vocab, tokens) = weight @ hidden.T: on CPU BLAS this
    # product ran ~1.6x faster than hidden @ weight.T, and every later step can use it as is.
    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int, z_loss: float
    ) -> torch.Tensor:
        valid = targets != ignore_index
        count = valid.sum().clamp(min=1).float()
        work = torch.float32 if hidden.dtype == torch.float16 else hidden.dtype
        w, hid = weight.to(work), hidden.to(work)
        grad_hidden = torch.empty(hidden.shape, dtype=work, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        step = _chunk_rows(weight.shape[0])
        for start in range(0, hidden.shape[0], step):
            h = hid[start : start + step]
            t = targets[start : start + step].clamp(min=0)  # ignored rows are masked below
            keep = valid[start : start + step].float()
            cols = torch.arange(h.shape[0], device=h.device)
            logits_t = (w @ h.t()).float()  # (vocab, chunk)
            lse = torch.logsumexp(logits_t, dim=0)
            per_token = lse - logits_t[t, cols]
            if z_loss:
                per_token = per_token + z_loss * lse.square()
            total += (per_token * keep).sum()
            # d(sum of losses)/d(logits) = softmax * (1 + 2 z lse) - onehot, over the logits.
            grad_t = logits_t.sub_(lse).exp_()
            if z_loss:
                grad_t.mul_(1.0 + 2.0 * z_loss * lse)
            grad_t[t, cols] -= 1.0
            grad_t.mul_(keep)
            g = grad_t.to(work)
            grad_hidden[start : start + step] = g.t() @ w
            if work == torch.float32:
                grad_weight.addmm_(g, h)
            else:
                grad_weight += g @ h  # bf16 product (fp32 inside the matmul), fp32 accumulation
        ctx.save_for_backward(grad_hidden, grad_weight, count)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total / count

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_hidden, grad_weight, count = ctx.saved_tensors
        scale = grad_out.float() / count  # fp16's loss scale and the mean, applied in fp32
        # In place where the buffer is already fp32: a fresh copy of the (vocab, d) weight
        # gradient would cost another large allocation.
        gh = grad_hidden.mul_(scale) if grad_hidden.dtype == torch.float32 else grad_hidden.float().mul_(scale)
        gw = grad_weight.mul_(scale)
        return gh.to(ctx.dtypes[0]), gw.to(ctx.dtypes[1]), None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, ignoring `ignore_index`,
    plus `z_loss` x the mean squared log-partition (PaLM's z-loss) when set.

    hidden (..., d), weight (vocab, d), targets (...). Logits are accumulated in fp32.
    Without gradients (evaluation) it only computes the loss, still chunked.
    """
    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(h, weight, t, ignore_index, z_loss)
    valid = t != ignore_index
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    step = _chunk_rows(weight.shape[0])
    for start in range(0, h.shape[0], step):
        logits = (h[start : start + step] @ weight.t()).float()
        total += torch.nn.functional.cross_entropy(
            logits, t[start : start + step], ignore_index=ignore_index, reduction="sum"
        )
        if z_loss:
            keep = t[start : start + step] != ignore_index
            total += z_loss * (torch.logsumexp(logits, dim=-1).square() * keep).sum()
    return total / valid.sum().clamp(min=1)

"""A fused softmax output layer and cross-entropy for the language models, and the allocator setting for training.

``linear_cross_entropy(x, weight, bias, target)`` equals
``F.cross_entropy(F.linear(x, weight, bias), target)`` (mean over rows) in value and gradients, but keeps one
(N, V) buffer instead of three: the logits are turned into the softmax in place in the forward, and the backward
subtracts the one-hot target from it in place. On Penn Treebank (N = 400 rows, V = 10,000) the separate
``log_softmax`` and ``nll_loss`` backwards (a 16 MB zero fill each step) cost about as much as the three matrix
products; ``python benchmarks/lm_step.py`` measures the difference (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import ctypes
import sys

import torch
from torch import Tensor

from embdrop import _checks


class _LinearCrossEntropy(torch.autograd.Function):
    # The buffer is the transposed logits (V, N): w @ x.T, g @ x and g.T @ w are the layouts in which oneDNN's
    # bfloat16 GEMMs run fastest, and no slower in float32. The softmax then runs down the columns.
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, lowp) -> Tensor:
        # lowp: None, or the dtype (autocast's) in which the three matrix products run; the softmax, the loss and
        # the buffer are in the weight's dtype (float32 under autocast, even where x came out of an op in bfloat16)
        xm, wm = (x, weight) if lowp is None else (x.to(lowp), weight.to(lowp))
        with torch.autocast(x.device.type, enabled=False):
            logits = (wm @ xm.t()).to(weight.dtype)  # (V, N)
        if bias is not None:
            logits.add_(bias[:, None])
        picked = logits.gather(0, target[None, :])  # (1, N)
        top = logits.amax(0, keepdim=True)  # (1, N): for a stable exp
        probs = logits.sub_(top).exp_()  # (V, N): unnormalised, in place
        total = probs.sum(0, keepdim=True)  # (1, N)
        probs.div_(total)
        loss = (top + total.log() - picked).mean()
        ctx.save_for_backward(xm, wm, probs, target)
        ctx.has_bias = bias is not None
        ctx.dtypes = (x.dtype, weight.dtype)
        ctx.used = False
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.used:  # the saved softmax became the gradient in place the first time
            raise RuntimeError("linear_cross_entropy: backward through the same graph twice is not supported")
        ctx.used = True
        xm, wm, probs, target = ctx.saved_tensors
        g = probs  # (V, N): d loss / d logits = (softmax - one_hot) / N, built in place
        g.scatter_add_(0, target[None, :], torch.full_like(target[None, :], -1, dtype=g.dtype))
        g.mul_(grad / g.shape[1])
        gm = g.to(wm.dtype)  # the products in the forward's precision
        dx = (gm.t() @ wm).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None  # (N, H)
        dw = (gm @ xm).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None  # (V, H)
        db = g.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (V,)
        return dx, dw, db, None, None


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor) -> Tensor:
    """Mean cross-entropy of ``softmax(x @ weight.T + bias)`` against ``target``, fused.

    Args:
        x: the inputs of the output layer.
        weight: its weight, as ``nn.Linear.weight``.
        bias: its bias, or None.
        target: class ids.

    Shape:
        x (N, H), weight (V, H), bias (V,), target (N,) -> a scalar.

    Backward may run once per forward (the softmax is turned into the gradient in place). Under ``torch.autocast``
    the matrix products run in autocast's dtype and the softmax and the loss in ``weight``'s.
    """
    if x.dim() != 2 or target.shape != x.shape[:1]:
        raise _checks.invalid("target", f"shape ({x.shape[0]},) for x of shape (N, H)", tuple(target.shape))
    if target.dtype != torch.long:
        raise _checks.invalid("target", "a torch.long tensor", target.dtype)
    t = x.device.type
    lowp = torch.get_autocast_dtype(t) if torch.is_autocast_enabled(t) else None
    return _LinearCrossEntropy.apply(x, weight, bias, target, lowp)


def keep_freed_memory() -> bool:
    """Stop glibc's malloc from returning large blocks to the system after every step.

    By default blocks over 128 KiB (the threshold grows to at most 32 MiB) are mmap-ed and unmapped when freed, so
    each training step page-faults its activations afresh (``benchmarks/lm_step.py --keep-freed-memory`` measures
    the effect). This is what PyTorch's CPU tuning guide gets by switching to jemalloc or tcmalloc; here it is
    glibc's own ``mallopt``. Returns False where it does
    not apply.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]  # both are C ints: larger values would wrap
    # Blocks up to 1 GiB (glibc before 2.26: its maximum, 32 MiB) come from the heap and are reused; freed memory
    # is given back only past 2 GiB at the top of the heap.
    ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 or libc.mallopt(M_MMAP_THRESHOLD, 1 << 25) == 1
    return ok and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1) == 1

"""The kernels' gradients are first derivatives: their backward passes are C++ and Triton that autograd cannot
differentiate again. Asked for a gradient's own graph (``torch.autograd.grad(..., create_graph=True)``, as a gradient
penalty does), autograd would otherwise hand back gradients that carry no graph (torch's "element 0 of tensors does
not require grad" at the second backward), or, where a sum mixes them with terms that do, drop their terms from the
second derivative without a word. :func:`first_order` passes such gradients through a node whose own backward
raises one error that says what to do; without ``create_graph`` it returns them untouched."""

from __future__ import annotations

import torch
from torch import Tensor

MESSAGE = (
    "embdrop's fused kernel gives first derivatives only, and this backward asked for a second one through {what} "
    "(a gradient taken with create_graph=True, then differentiated). Run the layers on the reference loop, which "
    "gives the same values and their second derivatives more slowly: set EMBDROP_KERNEL=reference in the "
    "environment before the first layer runs."
)


class _FirstOrder(torch.autograd.Function):
    """The gradients as they are (copied, so that autograd may accumulate into them); differentiating them raises."""

    @staticmethod
    def forward(ctx, what: str, anchor: Tensor, *grads: Tensor):
        ctx.what = what
        return tuple(g.clone() for g in grads)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(MESSAGE.format(what=ctx.what))


def first_order(what: str, grads: tuple, *anchors) -> tuple:
    """``grads`` (tensors or None) as they are, or, under ``create_graph`` (grad mode on in a backward) with one of
    ``anchors`` in a graph, the same values through a node that raises when they are differentiated again. ``what``
    names the op for the message (for example ``"the LSTM's recurrence"``)."""
    if not torch.is_grad_enabled():
        return grads
    anchor = next((a for a in anchors if isinstance(a, Tensor) and a.requires_grad), None)
    where = [i for i, g in enumerate(grads) if isinstance(g, Tensor)]
    if anchor is None or not where:
        return grads
    marked = _FirstOrder.apply(what, anchor, *(grads[i] for i in where))
    marked = marked if isinstance(marked, tuple) else (marked,)
    out = list(grads)
    for i, g in zip(where, marked, strict=True):
        out[i] = g
    return tuple(out)

"""Batched matrix products through the fused CPU kernel's GEMM (``csrc/gemm.cpp``): oneDNN's float32 matmul where
it is faster than ATen's ``bmm`` (MKL) on this CPU, ATen's elsewhere, with the same float32 results up to the order
of the sums. A torch custom op with autograd (both gradients are batched products too), used by the recurrent
layers' input projection; the recurrences call the same GEMM from C++."""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.kernels import build


@torch.library.custom_op("embdrop::bmm", mutates_args=())
def _bmm(a: Tensor, b: Tensor) -> Tensor:
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        got = f"{_checks.describe(a)} and {_checks.describe(b)}"
        raise _checks.invalid("a, b", "tensors of shapes (G, M, K) and (G, K, N)", got)
    return build.extension().batched_product(a, b)


@_bmm.register_fake
def _(a, b):
    return a.new_empty(a.shape[0], a.shape[1], b.shape[2])


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _grad(ctx, g):
    a, b = ctx.saved_tensors
    ga = _bmm(g, b.transpose(1, 2)) if ctx.needs_input_grad[0] else None  # (G, M, N) x (G, N, K)
    gb = _bmm(a.transpose(1, 2), g) if ctx.needs_input_grad[1] else None  # (G, K, M) x (G, M, N)
    return ga, gb


_bmm.register_autograd(_grad, setup_context=_setup)
build.no_dynamo_import_until_needed(_bmm)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm(a, b)`` for (G, M, K) and (G, K, N); float32 CPU tensors go through the kernel's GEMM when it is
    built (not under autocast, which rounds the operands, nor under tracing, which keeps torch's ops)."""
    fast = a.device.type == "cpu" and a.dtype == torch.float32 and b.dtype == torch.float32
    fast = fast and not torch.is_autocast_enabled("cpu") and not _checks.tracing()
    if fast and build.available():
        return _bmm(a, b)
    return torch.bmm(a, b)

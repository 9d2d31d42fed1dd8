"""The recurrent layers' input projection on the fused CPU kernel: its operand and its product.

- :func:`bmm`: batched matrix products through the kernel's GEMM (``csrc/gemm.cpp``): oneDNN's float32 matmul where
  it is faster than ATen's ``bmm`` (MKL) on this CPU, ATen's elsewhere, with the same float32 results up to the
  order of the sums. The recurrences call the same GEMM from C++.
- :func:`gate_inputs`: the input turned time-first and masked once per gate (``csrc/gate_inputs.cpp``), in one
  pass, bit-identical to torch's ops.
- :func:`masked_projection` and :func:`masked_product`: each gate's projection of its masked input without the
  dropped channels' products, for MC-dropout predictions and for training steps (the latter only where its sums
  are the dense product's to the bit).

The ops with a gradient are torch custom ops with autograd."""

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


@torch.library.custom_op("embdrop::gate_inputs", mutates_args=())
def _gate_inputs(x: Tensor, m: Tensor, scale: float) -> Tensor:
    return build.extension().gate_inputs(x, m, scale)


@_gate_inputs.register_fake
def _(x, m, scale):
    return x.new_empty(m.shape[0], x.shape[1], x.shape[0], x.shape[2])


def _gate_inputs_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.scale = inputs[2]


def _gate_inputs_grad(ctx, g):
    (m,) = ctx.saved_tensors
    return build.extension().gate_inputs_backward(g.contiguous(), m, ctx.scale), None, None


_gate_inputs.register_autograd(_gate_inputs_grad, setup_context=_gate_inputs_setup)
build.no_dynamo_import_until_needed(_gate_inputs)


def gate_inputs(x: Tensor, m: Tensor, scale: float) -> Tensor:
    """``x`` (B, T, C) time-first and times each gate's mask: (G, T, B, C) with entry (k, t, b) equal to
    ``x[b, t] * (m[k, b] * scale)``, for ``m`` (G, B, C), a mask that needs no gradient. In one pass on the kernel
    (float32/float64 CPU tensors, not under tracing); torch's ops elsewhere, with the same bits."""
    fast = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and m.dtype == x.dtype
    if fast and not m.requires_grad and not _checks.tracing() and build.available():
        return _gate_inputs(x.contiguous(), m.contiguous(), float(scale))
    return x.transpose(0, 1).unsqueeze(0) * (m * scale).unsqueeze(1)


def _masked_kernel_takes(*tensors: Tensor) -> bool:
    """Whether the kernel's masked products take these operands: float32 CPU tensors, not under autocast (which
    rounds the operands) nor tracing (which keeps torch's ops), the kernel built."""
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    return not torch.is_autocast_enabled("cpu") and not _checks.tracing() and build.available()


@torch.library.custom_op("embdrop::masked_product", mutates_args=())
def _masked_product(xm: Tensor, w: Tensor, x: Tensor, m: Tensor, scale: float) -> Tensor:
    G, M = m.shape[0], xm.shape[1]
    return build.extension().masked_projection(x, m, scale, w).view(G, M, w.shape[0] // G)


@_masked_product.register_fake
def _(xm, w, x, m, scale):
    return xm.new_empty(xm.shape[0], xm.shape[1], w.shape[0] // m.shape[0])


def _masked_product_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])


def _masked_product_grad(ctx, g):
    xm, w = ctx.saved_tensors
    G, C = xm.shape[0], xm.shape[2]
    # bmm's gradients for xm @ w_k^T, the same calls: (G, M, H) x (G, H, C) and (G, C, M) x (G, M, H)
    gxm = _bmm(g, w.view(G, -1, C)) if ctx.needs_input_grad[0] else None
    gw = _bmm(xm.transpose(1, 2), g).transpose(1, 2).reshape(w.shape) if ctx.needs_input_grad[1] else None
    return gxm, gw, None, None, None


_masked_product.register_autograd(_masked_product_grad, setup_context=_masked_product_setup)
build.no_dynamo_import_until_needed(_masked_product)


def masked_product(xm: Tensor, x: Tensor, m: Tensor, scale: float, w: Tensor) -> Tensor | None:
    """``bmm(xm, w_k^T)`` for ``xm = gate_inputs(x, m, scale)`` (G, M, C) as (G, M, H), its forward computed without
    the dropped channels (:func:`masked_projection`), with bmm's gradients for ``xm`` and ``w``; or None where that
    would not give the dense product's bits: the kernel's sums differ from the library's at this shape on this CPU
    (checked once per shape), the tensors are not float32 on CPU, under autocast or tracing, or without the kernel.
    ``x`` and ``m`` get no gradient through it (``x``'s flows through ``xm``)."""
    if m.requires_grad or not _masked_kernel_takes(xm, x, m, w):
        return None
    G, M, C = xm.shape
    if not build.extension().masked_projection_exact(G, M, C, w.shape[0] // G):
        return None
    return _masked_product(xm, w, x.detach().contiguous(), m.contiguous(), float(scale))


def masked_projection(x: Tensor, m: Tensor, scale: float, w: Tensor) -> Tensor | None:
    """Each gate's input projection ``(x[b, t] * m[k, b] * scale) @ w_k^T`` as (G, T * B, H), the product of
    :func:`gate_inputs` with ``w`` (G * H, C), computed without the dropped channels (a product with ``1 - p`` of
    the flops, ``csrc/gate_inputs.cpp``), or None where that does not apply: a gradient is needed (it has no
    backward), or not float32 CPU tensors, under autocast or tracing, or without the kernel. Its results equal the
    dense product's up to the order of the sums."""
    G, B = m.shape[0], x.shape[0]
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or m.requires_grad):
        return None
    if not _masked_kernel_takes(x, m, w):
        return None
    out = build.extension().masked_projection(x.contiguous(), m.contiguous(), float(scale), w)
    return out.view(G, x.shape[1] * B, w.shape[0] // G)

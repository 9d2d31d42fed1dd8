"""The recurrent layers' input projection on the fused CPU kernel: its operand and its product.

- :func:`bmm`: batched matrix products through the kernel's GEMM (``csrc/gemm.cpp``): oneDNN's float32 matmul where
  it is faster than ATen's ``bmm`` (MKL) on this CPU, ATen's elsewhere, with the same float32 results up to the
  order of the sums. The recurrences call the same GEMM from C++.
- :func:`gate_inputs`: the input turned time-first and masked once per gate (``csrc/gate_inputs.cpp``), in one
  pass, bit-identical to torch's ops.
- :func:`masked_projection` and :func:`masked_product`: each gate's projection of its masked input without the
  dropped channels' products, for MC-dropout predictions and for training steps; in training the input's gradient
  too (``csrc/input_grad.cpp``), each only where its sums are the dense path's to the bit.

The ops with a gradient are torch custom ops with autograd."""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.kernels import build
from embdrop.kernels.first_order import first_order


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
    if torch.is_grad_enabled() and g.requires_grad:  # create_graph: torch's ops, differentiable again
        return (g * (m * ctx.scale).unsqueeze(1)).sum(0).transpose(0, 1), None, None  # (G, T, B, C) -> (B, T, C)
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
def _masked_product(x: Tensor, w: Tensor, m: Tensor, scale: float, xm: Tensor, forward: bool, backward: bool) -> Tensor:
    G, (B, T, C) = m.shape[0], x.shape
    if forward:
        return build.extension().masked_projection(x, m, scale, w).view(G, T * B, w.shape[0] // G)
    return build.extension().batched_product(xm, w.view(G, -1, C).transpose(1, 2))


@_masked_product.register_fake
def _(x, w, m, scale, xm, forward, backward):
    return xm.new_empty(xm.shape[0], xm.shape[1], w.shape[0] // m.shape[0])


def _masked_product_setup(ctx, inputs, output):
    x, w, m, scale, xm, _, backward = inputs
    ctx.save_for_backward(w, m, xm)
    ctx.scale, ctx.steps, ctx.backward = scale, x.shape[1], backward


def _masked_product_grad(ctx, g):
    w, m, xm = ctx.saved_tensors
    (G, M, C), T = xm.shape, ctx.steps
    g = g.contiguous()
    gx = gw = None
    if ctx.needs_input_grad[0]:
        ext = build.extension()
        # without the dropped channels' products where that gives the dense path's values (None: g or w not finite)
        gx = ext.masked_input_grad(g, w, m, ctx.scale, T) if ctx.backward else None
        if gx is None:  # the dense path: bmm's gradient for xm, then gate_inputs' (the same calls)
            gx = ext.gate_inputs_backward(_bmm(g, w.view(G, -1, C)).view(G, T, M // T, C), m, ctx.scale)
    if ctx.needs_input_grad[1]:  # bmm's gradient for w_k^T: (G, C, M) x (G, M, H)
        gw = _bmm(xm.transpose(1, 2), g).transpose(1, 2).reshape(w.shape)
    gx, gw = first_order("the per-gate masked input projection", (gx, gw), g, w)
    return gx, gw, None, None, None, None, None


_masked_product.register_autograd(_masked_product_grad, setup_context=_masked_product_setup)
build.no_dynamo_import_until_needed(_masked_product)


def masked_product(x: Tensor, m: Tensor, scale: float, w: Tensor) -> Tensor | None:
    """Each gate's projection ``bmm(xm, w_k^T)`` of its masked input ``xm = gate_inputs(x, m, scale)`` as
    (G, T * B, H), for a training step, with gradients for ``x`` and ``w``; the forward (:func:`masked_projection`)
    and the input's gradient (``csrc/input_grad.cpp``) each computed without the dropped channels' products where
    that gives the dense path's values (checked once per shape on this CPU; the signs of zeros aside; the input's
    gradient only with at least as many sequences B as threads), densely where it does not. None where neither
    applies, or the tensors are not float32 on CPU, under autocast or tracing, a mask with a gradient, or without
    the kernel: the caller then runs the dense path itself. ``m`` gets no gradient."""
    if m.requires_grad or not _masked_kernel_takes(x, m, w):
        return None
    G, (B, T, C) = m.shape[0], x.shape
    H = w.shape[0] // G
    ext = build.extension()
    forward = ext.masked_projection_exact(G, T * B, C, H)
    # the own input gradient splits its work by sequence: fewer sequences than threads leave threads idle
    backward = x.requires_grad and torch.get_num_threads() <= B and ext.masked_input_grad_exact(G, T * B, H, C)
    if not (forward or backward):
        return None
    x, m = x.contiguous(), m.contiguous()
    xm = ext.gate_inputs(x.detach(), m, float(scale)).view(G, T * B, C)  # the weight's gradient reads it
    return _masked_product(x, w, m, float(scale), xm, forward, backward)


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

"""Embedding dropout's lookup and scaling in one pass of the fused CPU kernel (``csrc/embedding.cpp``), forward and
backward, dense or sparse gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.kernels import build


def _embedding_scaled_impl(weight: Tensor, ids: Tensor, scale: Tensor, padding_idx: int, sparse: bool) -> Tensor:
    if weight.dim() != 2:
        raise _checks.invalid("weight", "a (V, E) tensor", _checks.describe(weight))
    build.expect("weight", weight, tuple(weight.shape), (torch.float32, torch.float64))
    build.expect("ids", ids, tuple(ids.shape), (torch.int64,))
    build.expect("scale", scale, tuple(ids.shape), (weight.dtype,))
    out = build.extension().embedding_scaled(
        weight.contiguous(), ids.contiguous().view(-1), scale.contiguous().view(-1)
    )
    return out.view(*ids.shape, weight.shape[1])  # (N, E) -> (*ids.shape, E)


_embedding_scaled = torch.library.custom_op("embdrop::embedding_scaled", _embedding_scaled_impl, mutates_args=())


@_embedding_scaled.register_fake
def _(weight, ids, scale, padding_idx, sparse):
    return weight.new_empty((*ids.shape, weight.shape[1]))


def _embedding_scaled_setup(ctx, inputs, output):
    weight, ids, scale, padding_idx, sparse = inputs
    ctx.num_embeddings, ctx.padding_idx, ctx.sparse = weight.shape[0], padding_idx, sparse
    ctx.save_for_backward(ids, scale)


def _embedding_scaled_grad(ctx, grad):
    ids, scale = ctx.saved_tensors
    E = grad.shape[-1]
    # (N, E), (N,), (N,); ids may be a strided view (a column of a (B, 2) table): the kernel reads them flat
    grad, ids, scale = grad.reshape(-1, E), ids.reshape(-1).contiguous(), scale.reshape(-1).contiguous()
    # under create_graph (a gradient penalty) torch's ops, which autograd can differentiate again
    graph = torch.is_grad_enabled() and grad.requires_grad
    if not ctx.sparse and not graph:
        backward = _embedding_scaled_backward_impl if build.eager() else _embedding_scaled_backward
        return backward(grad, ids, scale, ctx.num_embeddings, ctx.padding_idx), None, None, None, None
    if not ctx.sparse:
        values = grad * scale.unsqueeze(1)
        if ctx.padding_idx >= 0:  # as nn.Embedding: the padding row gets no gradient
            values = values * (ids != ctx.padding_idx).unsqueeze(1).to(values.dtype)
        return values.new_zeros(ctx.num_embeddings, E).index_add(0, ids, values), None, None, None, None
    # one op: the scaled values and the padding left out in one pass (the ops below cost more)
    if build.eager() and not graph:
        dw = build.extension().embedding_scaled_backward(
            grad.contiguous(), ids, scale, ctx.num_embeddings, ctx.padding_idx, True
        )
        return dw, None, None, None, None
    values = grad * scale.unsqueeze(1)  # (N, E)
    if ctx.padding_idx >= 0:  # as nn.Embedding: the padding row gets no entry at all
        real = ids != ctx.padding_idx
        ids, values = ids[real], values[real]
    dw = torch.sparse_coo_tensor(ids.unsqueeze(0), values, (ctx.num_embeddings, E), check_invariants=False)
    return dw, None, None, None, None


def _embedding_scaled_backward_impl(
    grad: Tensor, ids: Tensor, scale: Tensor, num_embeddings: int, padding_idx: int
) -> Tensor:
    return build.extension().embedding_scaled_backward(
        grad.contiguous(), ids, scale, num_embeddings, padding_idx, False
    )


_embedding_scaled_backward = torch.library.custom_op(
    "embdrop::embedding_scaled_backward", _embedding_scaled_backward_impl, mutates_args=()
)


@_embedding_scaled_backward.register_fake
def _(grad, ids, scale, num_embeddings, padding_idx):
    return grad.new_empty((num_embeddings, grad.shape[1]))


_embedding_scaled.register_autograd(_embedding_scaled_grad, setup_context=_embedding_scaled_setup)


class _EmbeddingScaled(torch.autograd.Function):
    """The eager twin of the ``embdrop::embedding_scaled`` op: the same forward, context and backward."""

    @staticmethod
    def forward(ctx, weight, ids, scale, padding_idx, sparse):
        # ctx in forward, not a separate setup_context: Function.apply then skips binding the arguments through
        # inspect.signature, which cost more than the kernel at B x T of a few thousand
        out = _embedding_scaled_impl(weight, ids, scale, padding_idx, sparse)
        _embedding_scaled_setup(ctx, (weight, ids, scale, padding_idx, sparse), out)
        return out

    backward = staticmethod(_embedding_scaled_grad)


def embedding_scaled(weight: Tensor, ids: Tensor, scale: Tensor, *, padding_idx: int | None, sparse: bool) -> Tensor:
    """``weight[ids] * scale[..., None]`` in one pass: ``weight`` (V, E) float32/float64, ``ids`` int64 (B, T),
    ``scale`` (B, T) in the weight's dtype, returns (B, T, E). The weight's gradient is dense (V, E) or, with
    ``sparse``, a sparse (V, E) tensor as ``nn.Embedding(sparse=True)`` gives; the padding row gets none, as in
    ``nn.Embedding``. ``scale`` gets no gradient. Needs :func:`available`."""
    pad = -1 if padding_idx is None else padding_idx
    if build.eager():
        return _EmbeddingScaled.apply(weight, ids, scale, pad, sparse)
    return _embedding_scaled(weight, ids, scale, pad, sparse)


def embedding_hashed(
    weight: Tensor, ids: Tensor, key: tuple[int, int, int, int, int], *, value: float, sparse: bool
) -> Tensor:
    """What :func:`embedding_scaled` computes with ``scale = word_keep(ids, ...)``, the scale computed in the kernel
    where it is used (forward and backward) from ``key`` = (row, num_embeddings, threshold, seed, padding_idx or -1)
    of :func:`embdrop.kernels.hashed.word_keep`: the same bits. Eager CPU only (:func:`build.eager`); needs
    :func:`available`."""
    build.expect("weight", weight, tuple(weight.shape), (torch.float32, torch.float64))
    build.expect("ids", ids, tuple(ids.shape), (torch.int64,))
    row, V, threshold = key[0], key[1], key[2]
    if not 0 <= threshold <= 2**32 or weight.shape[0] > V:
        raise _checks.invalid("key", f"a threshold in [0, 2^32] and a table of at least {weight.shape[0]} ids", key)
    if row > 0 and (ids.numel() // row) * V > 2**32:
        raise _checks.invalid("key", f"rows x num_embeddings <= 2^32 (rows={ids.numel() // row})", key)
    # one autograd node in C++ (the kernel computes the factor from the key, forward and backward: no per-position
    # scale is drawn, written or saved)
    return build.extension().embedding_hashed_autograd(weight, ids.contiguous(), list(key), float(value), sparse)


for _op in (_embedding_scaled, _embedding_scaled_backward):
    build.no_dynamo_import_until_needed(_op)

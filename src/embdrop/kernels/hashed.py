"""Hashed keep-masks in the fused CPU kernel (``csrc/masks.cpp``, ``csrc/embedding.cpp``): drawn from one key,
written out (:func:`keep_mask`), applied without being written (:func:`hashed_scale`), or read at word ids
(:func:`word_keep`)."""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.kernels import build


@torch.library.custom_op("embdrop::keep_mask", mutates_args=())
def _keep_mask(key: Tensor, shape: list[int], threshold: int, dtype: torch.dtype) -> Tensor:
    build.expect("key", key, (), (torch.int64,))
    if not 0 <= threshold <= 2**32:
        raise _checks.invalid("threshold", "an int in [0, 2^32]", threshold)
    return build.extension().keep_mask(list(shape), threshold, int(key), dtype)


@_keep_mask.register_fake
def _(key, shape, threshold, dtype):
    return key.new_empty(shape, dtype=dtype)


def keep_mask(shape: tuple[int, ...], threshold: int, key: Tensor, dtype: torch.dtype) -> Tensor:
    """The hashed keep-mask of :func:`embdrop.functional.masks.bernoulli_keep_hashed` for a CPU int64 ``key``
    (a 0-dim tensor, so that torch.compile keeps the draw in its graph); needs :func:`available`."""
    return _keep_mask(key, list(shape), threshold, dtype)


class _HashedScale(torch.autograd.Function):
    """``x * keep * value`` with the hashed keep-mask of ``key`` computed in place of being read: forward and
    backward are one pass each and no mask is stored."""

    @staticmethod
    def forward(x: Tensor, key: int, threshold: int, value: float) -> Tensor:
        return build.extension().hashed_scale(x.contiguous(), threshold, key, value)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.args = inputs[1:]

    @staticmethod
    def backward(ctx, grad: Tensor):
        key, threshold, value = ctx.args
        if torch.is_grad_enabled() and grad.requires_grad:  # create_graph: torch's ops, differentiable again
            mask = keep_mask(tuple(grad.shape), threshold, torch.tensor(key, dtype=torch.int64), grad.dtype)
            return grad * mask * value, None, None, None
        return build.extension().hashed_scale(grad.contiguous(), threshold, key, value), None, None, None


def hashed_scale(x: Tensor, key: Tensor, threshold: int, value: float) -> Tensor:
    """``x * keep_mask(x.shape, threshold, key) * value`` (see :func:`keep_mask`) without writing the mask, for an
    eager CPU ``x`` of fewer than 2^32 entries; differentiable in ``x``. Needs :func:`available`."""
    build.expect("key", key, (), (torch.int64,))
    if not 0 <= threshold <= 2**32:
        raise _checks.invalid("threshold", "an int in [0, 2^32]", threshold)
    if x.device.type != "cpu" or not x.is_floating_point() or x.numel() >= 2**32:
        raise _checks.invalid("x", "a CPU floating-point tensor of fewer than 2^32 entries",
                              f"{_checks.describe(x)} on {x.device}")  # fmt: skip
    return _HashedScale.apply(x, int(key), threshold, value)


def _word_keep_impl(
    ids: Tensor, key: Tensor, row: int, num_embeddings: int, threshold: int, padding_idx: int, value: float,
    dtype: torch.dtype,
) -> Tensor:  # fmt: skip
    build.expect("key", key, (), (torch.int64,))
    build.expect("ids", ids, tuple(ids.shape), (torch.int64,))
    if not 0 <= threshold <= 2**32:
        raise _checks.invalid("threshold", "an int in [0, 2^32]", threshold)
    if row > 0 and (ids.numel() // row) * num_embeddings > 2**32:
        raise _checks.invalid("num_embeddings", f"rows x num_embeddings <= 2^32 (rows={ids.numel() // row})",
                              num_embeddings)  # fmt: skip
    flat = ids.contiguous().view(-1)
    keep = build.extension().word_keep(flat, row, num_embeddings, threshold, int(key), padding_idx, value, dtype)
    return keep.view(ids.shape)


_word_keep = torch.library.custom_op("embdrop::word_keep", _word_keep_impl, mutates_args=())


@_word_keep.register_fake
def _(ids, key, row, num_embeddings, threshold, padding_idx, value, dtype):
    return ids.new_empty(ids.shape, dtype=dtype)


def word_keep(
    ids: Tensor, key: Tensor, *, row: int, num_embeddings: int, threshold: int, padding_idx: int | None,
    value: float = 1.0, dtype: torch.dtype = torch.float32,
) -> Tensor:  # fmt: skip
    """The keep-mask of :func:`embdrop.functional.masks.word_type_mask` drawn by hashing: position n of ``ids``
    reads entry ``(n // row) * num_embeddings + id`` (``row`` = T, "sample") or ``id`` (``row`` = 0, "batch") of
    :func:`embdrop.functional.masks.bernoulli_keep_hashed`'s mask under ``key``; kept entries hold ``value``,
    dropped ones 0, padding ids 1. Needs :func:`available`."""
    pad = -1 if padding_idx is None else padding_idx
    op = _word_keep_impl if build.eager() else _word_keep
    return op(ids, key, row, num_embeddings, threshold, pad, value, dtype)


for _op in (_keep_mask, _word_keep):
    build.no_dynamo_import_until_needed(_op)

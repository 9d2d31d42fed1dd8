"""Mask sampling: every random draw in embdrop happens here.

Rules, the same for every mask:

- A mask is a keep-mask: 1 where the entry survives, 0 where it is dropped. ``p`` is the probability to drop.
- Masks have the input's dtype and device, so applying one is a single broadcast multiply.
- ``generator=None`` draws from the global RNG of the input's device; a given generator is the only RNG touched.
- ``p == 0`` draws nothing (callers skip sampling); ``p == 1`` gives an all-zero mask.
"""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks


def bernoulli_keep(
    shape: tuple[int, ...],
    p: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A keep-mask of ``shape``: each entry is 1 with probability ``1 - p``, else 0, independently.

    Drawn as ``u < 1 - p`` with ``u ~ U[0, 1)``: the same distribution as ``bernoulli_(1 - p)`` and faster on CPU
    (``benchmarks/masks.py`` measures both), which matters for weight drop on big matrices. One uniform number is
    drawn per entry.
    """
    return torch.empty(shape, device=device, dtype=dtype).uniform_(generator=generator).lt_(1.0 - p)


def gaussian(
    shape: tuple[int, ...],
    mean: float,
    std: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Noise of ``shape``, each entry drawn independently from N(mean, std^2): the multiplicative mask of Gaussian
    dropout (mean 1) or the additive noise of Gaussian noise (mean 0)."""
    return torch.empty(shape, device=device, dtype=dtype).normal_(mean, std, generator=generator)


def shared_shape(shape: tuple[int, ...], shared_dims: tuple[int, ...]) -> tuple[int, ...]:
    """The mask shape for an input of ``shape`` whose mask is shared along ``shared_dims`` (those axes become 1)."""
    axes = _checks.normalize_dims("shared_dims", shared_dims, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def dropout_mask(
    x: Tensor, p: float, *, shared_dims: tuple[int, ...] = (), generator: torch.Generator | None = None
) -> Tensor:
    """Keep-mask for ``x``, one value shared along each axis in ``shared_dims``.

    Mask: x's shape with the ``shared_dims`` axes set to 1 (Keras ``noise_shape``, Flax ``broadcast_dims``).
    """
    return bernoulli_keep(
        shared_shape(tuple(x.shape), shared_dims), p, device=x.device, dtype=x.dtype, generator=generator
    )


def word_type_mask(
    ids: Tensor,
    p: float,
    *,
    mode: str = "sample",
    padding_idx: int | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-position keep-mask (B, T) for embedding dropout: one draw per word type, shared by its occurrences.

    ``mode="sample"`` draws one value per (sequence, word type), so a dropped word is zero everywhere in its
    sequence (Gal & Ghahramani 2016); ``mode="batch"`` draws one value per word type for the whole batch, as
    AWD-LSTM and fastai do. Only the types present in ``ids`` are drawn, so the cost grows with the batch, not with
    the vocabulary. Draws are made in sorted order of (sequence, id) or id, so a seeded generator gives the same
    mask whatever the order of the positions. The padding id is always kept.

    Mask: (B, T), one value per word type per sequence ("sample") or per batch ("batch"), redrawn every call.
    """
    ids = ids.long()
    if mode == "sample":
        # (B, T): a key that is unique per (sequence, id) pair.
        span = int(ids.max()) + 1 if ids.numel() else 1
        keys = ids + torch.arange(ids.shape[0], device=ids.device).unsqueeze(1) * span
    else:
        keys = ids
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)  # uniq (U,), inverse (B, T)
    keep = bernoulli_keep((uniq.numel(),), p, device=ids.device, dtype=dtype, generator=generator)[inverse]
    if padding_idx is not None:
        keep = keep.masked_fill(ids == padding_idx, 1.0)
    return keep


def word_keep_mask(
    ids: Tensor, p: float, *, padding_idx: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Boolean keep-mask (B, T) for id-level word dropout: False where the id is replaced. Padding is always kept.

    Mask: (B, T), one independent draw per position, redrawn every call.
    """
    drop = bernoulli_keep(tuple(ids.shape), 1.0 - p, device=ids.device, generator=generator).bool()  # True: p
    keep = ~drop
    if padding_idx is not None:
        keep = keep | (ids == padding_idx)
    return keep

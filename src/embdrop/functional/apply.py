"""Mask application and the functional forms of every dropout variant.

Each function here is stateless: it samples a mask with :mod:`embdrop.functional.masks` (or takes one) and applies
it. Survivors are scaled by ``1 / (1 - p)`` so that the expectation of the output equals the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from embdrop import _checks
from embdrop.functional import masks as M


def apply_mask(x: Tensor, mask: Tensor | M.HashedKeep, p: float) -> Tensor:
    """``x * mask / (1 - p)`` with the mask broadcast over x. ``p == 1`` gives zeros with zero (finite) gradients.

    A :class:`~embdrop.functional.masks.HashedKeep` of x's shape (weight drop's mask, drawn and not written) is
    applied by the fused CPU kernel in one pass forward and one backward."""
    if isinstance(mask, M.HashedKeep):
        if tuple(x.shape) == mask.shape and x.device.type == "cpu" and not torch.compiler.is_compiling():
            from embdrop.kernels import hashed

            return hashed.hashed_scale(x, mask.key, mask.threshold, keep_scale(p))
        mask = mask.tensor().to(x.device)
    # Scale the (usually smaller) mask, not x: one pass over x.
    return x * (mask * keep_scale(p))


def keep_scale(p: float) -> float:
    """The survivors' factor 1/(1-p); 0 at p == 1, where nothing survives, so gradients stay finite."""
    return 1.0 / (1.0 - p) if p < 1.0 else 0.0


def dropout(
    x: Tensor,
    p: float,
    *,
    shared_dims: tuple[int, ...] = (),
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Element-wise dropout whose mask is shared along ``shared_dims`` (see :class:`embdrop.Dropout`)."""
    p = _checks.probability("p", p, allow_one=True)
    if not training or p == 0.0:
        return x
    return apply_mask(x, M.dropout_mask(x, p, shared_dims=shared_dims, generator=generator), p)


def spatial_dropout1d(
    x: Tensor, p: float, *, training: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """Drop whole channels of (B, T, C): mask (B, 1, C), shared by every time step (Keras ``SpatialDropout1D``)."""
    _checks.rank("x", x, 3, "(B, T, C)")
    return dropout(x, p, shared_dims=(1,), training=training, generator=generator)


def token_dropout(x: Tensor, p: float, *, training: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Drop whole time steps of (B, T, C): mask (B, T, 1), shared by every channel."""
    _checks.rank("x", x, 3, "(B, T, C)")
    return dropout(x, p, shared_dims=(2,), training=training, generator=generator)


def word_dropout(
    ids: Tensor,
    p: float,
    unk_id: int,
    *,
    padding_idx: int | None = None,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Replace each id (B, T) by ``unk_id`` with probability p before the lookup (Bowman et al. 2016).

    Ids carry no scale, so nothing is rescaled; padding ids are never replaced.
    """
    p = _checks.probability("p", p, allow_one=True)
    _checks.ids("ids", ids)
    if not training or p == 0.0:
        return ids
    keep = M.word_keep_mask(ids, p, padding_idx=padding_idx, generator=generator)
    return ids.masked_fill(~keep, unk_id)


def embedding(
    ids: Tensor,
    weight: Tensor,
    *,
    p: float = 0.0,
    mode: str = "sample",
    padding_idx: int | None = None,
    max_norm: float | None = None,
    sparse: bool = False,
    training: bool = True,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Look up ids (B, T) in ``weight`` (V, E) with embedding dropout on word types; returns (B, T, E).

    The lookup happens first and the per-position mask (B, T, 1) multiplies its output, so no (V, E) masked copy
    of the weight is made, the cost grows with B*T, and sparse gradients keep working. Positions holding the
    padding id are never dropped and never scaled.
    """
    if not training or (p == 0.0 and mask is None):
        return F.embedding(ids, weight, padding_idx, max_norm, sparse=sparse)  # (B, T, E)
    if mask is None and _hashed_lookup_runs(weight, ids, max_norm):  # the mask computed where the kernel uses it
        from embdrop.kernels import embedding as fused

        key = M.word_type_key(ids, p, mode=mode, padding_idx=padding_idx, num_embeddings=weight.shape[0],
                              generator=generator)  # fmt: skip
        if key is not None:  # else nothing was drawn, and word_type_mask draws the mask its other way
            return fused.embedding_hashed(weight, ids.long(), key, value=keep_scale(p), sparse=sparse)
    if mask is None:  # (B, T): 1 / (1 - p) where kept, 0 where dropped, 1 at padding
        scale = M.word_type_mask(
            ids, p, mode=mode, padding_idx=padding_idx, num_embeddings=weight.shape[0], scale=keep_scale(p),
            dtype=weight.dtype, generator=generator,
        )  # fmt: skip
    else:
        scale = mask.to(weight.dtype) * keep_scale(p)  # (B, T)
        if padding_idx is not None:
            scale = scale.masked_fill(ids == padding_idx, 1.0)
    if _fused_lookup_runs(weight, ids, scale, max_norm):  # the lookup and the scaling in one pass, forward and backward
        from embdrop.kernels import embedding as fused

        return fused.embedding_scaled(weight, ids.long(), scale, padding_idx=padding_idx, sparse=sparse)
    out = F.embedding(ids, weight, padding_idx, max_norm, sparse=sparse)  # (B, T, E)
    return out * scale.unsqueeze(-1)  # (B, T, E) * (B, T, 1)


def _hashed_lookup_runs(weight: Tensor, ids: Tensor, max_norm: float | None) -> bool:
    """Whether the fused CPU kernel can run the lookup with the mask drawn as a key (eager: under torch.compile the
    mask is drawn as a tensor and the op that takes it runs)."""
    from embdrop.kernels import build

    if weight.device.type != "cpu" or ids.device.type != "cpu" or max_norm is not None:
        return False
    return weight.dtype in (torch.float32, torch.float64) and build.available() and build.eager()


def _fused_lookup_runs(weight: Tensor, ids: Tensor, scale: Tensor, max_norm: float | None) -> bool:
    """Whether the fused CPU kernel can run this embedding-dropout lookup (it has no max_norm, and a mask that
    needs a gradient goes through torch's ops)."""
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64) or max_norm is not None:
        return False
    if scale.requires_grad or ids.device.type != "cpu":
        return False
    from embdrop.kernels import build

    return build.available()

"""Mask sampling: every random draw in embdrop happens here.

Rules, the same for every mask:

- A mask is a keep-mask: 1 where the entry survives, 0 where it is dropped. ``p`` is the probability to drop.
- Masks have the input's dtype and device, so applying one is a single broadcast multiply.
- ``generator=None`` draws from the global RNG of the input's device; a given generator is the only RNG touched.
- ``p == 0`` draws nothing (callers skip sampling); ``p == 1`` gives an all-zero mask.
"""

from __future__ import annotations

import dataclasses
import math

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
    drawn per entry. Float32 masks on the CPU, once the fused kernel is loaded, are drawn by the kernel: the same
    numbers of the same generator, the same bits, in one pass instead of two.
    """
    if _kernel_draw(device, dtype, generator):
        from embdrop.kernels import build

        return build.extension().uniform_keep(list(shape), 1.0 - p, generator)
    return torch.empty(shape, device=device, dtype=dtype).uniform_(generator=generator).lt_(1.0 - p)


def _kernel_draw(device, dtype: torch.dtype, generator: torch.Generator | None) -> bool:
    """Whether the kernel may draw a :func:`bernoulli_keep` mask: float32 on an explicit CPU device, the kernel
    already loaded (a first mask never waits for its build), and torch's own ops not needed to see the draw
    (torch.compile, torch.export, jit.trace, vmap, a dispatch mode such as fake tensors)."""
    if dtype != torch.float32 or device is None or torch.device(device).type != "cpu":
        return False
    if generator is not None and generator.device.type != "cpu":
        return False
    from embdrop.kernels import build

    if not build.loaded() or _checks.tracing() or torch.jit.is_tracing():
        return False
    return not (torch._C._are_functorch_transforms_active() or torch._C._len_torch_dispatch_stack() > 0)


_MIX = (0x7FEB352D, 0x846CA68B)  # Wellons' lowbias32 multipliers
_HASHED_MAX = 2**32  # entries one hashed mask can have: the hash's counter is 32 bits


def _mul32(x: Tensor, m: int) -> Tensor:
    """X * m mod 2^32 for 0 <= x < 2^32 in int64, in two 16-bit halves of m so that no product overflows."""
    return (x * (m & 0xFFFF) + (((x * (m >> 16)) & 0xFFFF) << 16)) & 0xFFFFFFFF


def _mix32(x):
    """lowbias32 on uint32 numpy arrays (wrapping arithmetic) or on int64 tensors holding values below 2^32."""
    import numpy as np

    numpy = isinstance(x, np.ndarray)
    for shift, m in ((16, _MIX[0]), (15, _MIX[1])):
        x = x ^ (x >> shift)
        x = x * np.uint32(m) if numpy else _mul32(x, m)
    return x ^ (x >> 16)


def _hashed_bits(n: int, key: int, device: torch.device, numpy: bool | None = None) -> Tensor:
    """The hash of entries 0..n-1 under ``key`` (see :func:`bernoulli_keep_hashed`), as int64 values < 2^32;
    computed by numpy on CPU (or where ``numpy`` says), by torch ops on other devices."""
    return _hashed_at(None, key, device, numpy=numpy, n=n)


def _hashed_at(index: Tensor | None, key: int, device: torch.device, numpy: bool | None = None, n: int = 0) -> Tensor:
    """The hash of the entries ``index`` (int64, values < 2^32; ``None``: 0..n-1) under ``key``, as int64."""
    import numpy as np

    key &= 2**64 - 1
    s0, s1 = key & 0xFFFFFFFF, key >> 32
    if (
        device.type == "cpu" if numpy is None else numpy
    ):  # numpy's uint32 wraps as the hash wants: a few times faster than int64 torch ops
        i = np.arange(n, dtype=np.uint32) if index is None else index.cpu().numpy().astype(np.uint32)
        with np.errstate(over="ignore"):
            u = _mix32(_mix32(i ^ np.uint32(s0)) + np.uint32(s1))
        return torch.from_numpy(u.astype(np.int64)).to(device)
    i = torch.arange(n, dtype=torch.int64, device=device) if index is None else index.to(device, torch.int64)
    return _mix32((_mix32(i ^ s0) + s1) & 0xFFFFFFFF)


def _hash_key(device: torch.device, generator: torch.Generator | None) -> Tensor:
    """One random 64-bit key (a 0-dim int64 tensor on ``device``): the only draw a hashed mask makes."""
    return torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64, device=device, generator=generator)


def bernoulli_keep_hashed(
    shape: tuple[int, ...],
    p: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A keep-mask of ``shape`` like :func:`bernoulli_keep`, drawn from one random 64-bit key: for the big masks
    of weight drop, where drawing one number per entry from the generator costs as much as the layer's step.

    The key ``s = (s1, s0)`` comes from ``generator``; entry ``i`` (row-major) is kept when
    ``mix(mix(i ^ s0) + s1) < round((1 - p) * 2^32)``, ``mix`` being the lowbias32 integer hash (Wellons): entries
    are Bernoulli(1 - p) to within 2^-33 (``uniform_`` has 2^-24) and independent as far as the hash's statistics
    go (tested). The fused CPU kernel computes it in parallel; elsewhere torch ops compute the same bits.
    """
    mask = deferred_keep_hashed(shape, p, device=device, dtype=dtype, generator=generator)
    return mask.tensor() if isinstance(mask, HashedKeep) else mask


@dataclasses.dataclass(frozen=True)
class HashedKeep:
    """A mask of :func:`bernoulli_keep_hashed` drawn (its key) but not written out:
    :func:`embdrop.functional.apply_mask` applies it in one pass of the fused CPU kernel, without the mask in
    memory; :meth:`tensor` writes it."""

    shape: tuple[int, ...]
    threshold: int  # an entry is kept when its hash is below this
    key: Tensor  # 0-dim int64, on the CPU (weight drop's) or on the layer's device (zoneout's on the GPU path)
    dtype: torch.dtype

    def tensor(self) -> Tensor:
        from embdrop.kernels import build, hashed

        if self.key.device.type == "cpu" and build.available():
            return hashed.keep_mask(self.shape, self.threshold, self.key, self.dtype)
        n = math.prod(self.shape)
        return (_hashed_bits(n, int(self.key), self.key.device) < self.threshold).to(self.dtype).view(self.shape)


def deferred_keep_hashed(
    shape: tuple[int, ...],
    p: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    anywhere: bool = False,
) -> HashedKeep | Tensor:
    """The mask of :func:`bernoulli_keep_hashed` (the same draws from ``generator``, the same bits), left unwritten
    as a :class:`HashedKeep` where the fused CPU kernel can apply it (a CPU device, the kernel built, outside
    ``torch.compile``), else as the tensor. For masks drawn only to be applied, such as weight drop's.
    ``anywhere``: a :class:`HashedKeep` on any device (its key there), for a caller whose kernels hash it themselves
    (zoneout on the GPU path)."""
    n = math.prod(shape)
    if n >= _HASHED_MAX:
        return bernoulli_keep(shape, p, device=device, dtype=dtype, generator=generator)
    from embdrop.kernels import build

    dev = torch.device(device) if device is not None else torch.device("cpu")
    key = _hash_key(dev, generator)
    threshold = round((1.0 - p) * 2**32)
    if anywhere and n > 0:
        return HashedKeep(tuple(shape), threshold, key, dtype)
    if dev.type == "cpu" and build.available():
        mask = HashedKeep(tuple(shape), threshold, key, dtype)
        return mask.tensor() if torch.compiler.is_compiling() else mask
    return (_hashed_bits(n, int(key), dev) < threshold).to(dtype).view(shape)


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
    num_embeddings: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-position keep-mask (B, T) for embedding dropout: one draw per word type, shared by its occurrences.

    ``mode="sample"`` draws one value per (sequence, word type), so a dropped word is zero everywhere in its
    sequence (Gal & Ghahramani 2016); ``mode="batch"`` draws one value per word type for the whole batch, as
    AWD-LSTM and fastai do. The values are those of a (B, V) ("sample") or (V,) ("batch") mask of
    :func:`bernoulli_keep_hashed` (V = ``num_embeddings``, or the largest id + 1), read only where ``ids`` point:
    one key is drawn from ``generator`` and nothing of size V is made, so the cost grows with B*T, not with the
    vocabulary, and the mask does not depend on the order of the positions. The padding id is always kept (1);
    other kept positions hold ``scale`` (1 for a 0/1 mask, ``1 / (1 - p)`` to apply it directly).

    Mask: (B, T), one value per word type per sequence ("sample") or per batch ("batch"), redrawn every call.
    """
    ids = ids.long()
    B, T = ids.shape
    V = num_embeddings if num_embeddings is not None else (int(ids.max()) + 1 if ids.numel() else 1)
    row = T if mode == "sample" else 0
    if row and B * V >= _HASHED_MAX:  # past the hash's 32-bit counter: one uniform draw per (sequence, id)
        keep = _word_type_mask_sorted(ids, p, mode=mode, padding_idx=None, dtype=dtype, generator=generator)
    else:
        from embdrop.kernels import build, hashed

        key = _hash_key(ids.device, generator)
        threshold = round((1.0 - p) * 2**32)
        if ids.device.type == "cpu" and build.available():
            return hashed.word_keep(
                ids, key, row=row, num_embeddings=V, threshold=threshold, padding_idx=padding_idx, value=scale,
                dtype=dtype,
            )  # fmt: skip
        index = ids + torch.arange(B, device=ids.device).unsqueeze(1) * V if row else ids  # (B, T)
        keep = (_hashed_at(index, int(key), ids.device) < threshold).to(dtype)
    if scale != 1.0:
        keep = keep * scale
    if padding_idx is not None:
        keep = keep.masked_fill(ids == padding_idx, 1.0)
    return keep


def word_type_key(
    ids: Tensor, p: float, *, mode: str, padding_idx: int | None, num_embeddings: int,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int, int] | None:  # fmt: skip
    """The draw of :func:`word_type_mask` (one key from ``generator``) without the mask: (row, V, threshold, key,
    padding_idx or -1) for :func:`embdrop.kernels.embedding.embedding_hashed`, which computes the same mask where
    it uses it; None, and nothing drawn, where the mask is not a hashed one (B x V >= 2^32 in "sample" mode)."""
    B, T = ids.shape
    row = T if mode == "sample" else 0
    if row and B * num_embeddings >= _HASHED_MAX:
        return None
    key = _hash_key(ids.device, generator)
    pad = -1 if padding_idx is None else padding_idx
    return (row, num_embeddings, round((1.0 - p) * 2**32), int(key), pad)


def _word_type_mask_sorted(
    ids: Tensor, p: float, *, mode: str, padding_idx: int | None, dtype: torch.dtype, generator
) -> Tensor:
    """:func:`word_type_mask` by one uniform draw per distinct (sequence, id), in sorted order: for tables too big
    for the hashed mask (B x V >= 2^32)."""
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

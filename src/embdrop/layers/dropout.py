"""Dropout layers for (B, T, C) sequences and (B, T) ids: element-wise, channel, time step and word dropout."""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.functional import apply as FD
from embdrop.functional import masks as M
from embdrop.layers.base import StochasticModule


class Dropout(StochasticModule):
    """Element-wise dropout whose mask can be shared along chosen axes.

    In training, each entry of the mask is kept with probability ``1 - p`` and survivors are scaled by
    ``1 / (1 - p)``; in eval the layer is the identity. ``shared_dims`` is the general form of Keras'
    ``noise_shape`` and Flax's ``broadcast_dims``: ``Dropout(p, shared_dims=(1,))`` on (B, T, C) is Keras
    ``Dropout(p, noise_shape=(None, 1, None))``, i.e. :class:`SpatialDropout1D`.

    Args:
        p: probability to drop an entry, in [0, 1).
        shared_dims: axes along which one mask value is shared (negative axes count from the end).

    Shape:
        Input: any shape ``(*)``. Output: the same shape.

    Mask: x's shape with each axis in ``shared_dims`` set to 1, shared along those axes, redrawn every call.

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting", 2014.

    Example:
        >>> layer = Dropout(0.5, shared_dims=(1,))
        >>> x = torch.ones(2, 3, 4)
        >>> y = layer(x, generator=torch.Generator().manual_seed(0))
        >>> bool((y == y[:, :1]).all())  # one mask value per (sample, channel), shared along T
        True
    """

    def __init__(self, p: float, shared_dims: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.p = _checks.probability("p", p)
        self.shared_dims = _checks.dims("shared_dims", shared_dims)

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        return M.shared_shape(tuple(x.shape), self.shared_dims)

    def sample_masks(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The keep-mask (0/1, x's dtype) a training call on ``x`` would apply."""
        return M.dropout_mask(x, self.p, shared_dims=self.shared_dims, generator=generator)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise _checks.invalid("x", "a tensor", type(x).__name__)
        _checks.floating("x", x)

    def forward(
        self,
        x: Tensor,
        *,
        masks: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        mask = masks if masks is not None else mask  # masks=: every random layer's name; mask=: the earlier one
        self._check_input(x)
        if mask is None or not self.training:
            return FD.dropout(x, self.p, shared_dims=self.shared_dims, training=self.training, generator=generator)
        _checks.mask_shape("mask", mask, self.mask_shape(x))
        return FD.apply_mask(x, mask, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", shared_dims={self.shared_dims}" if self.shared_dims else "")


class SpatialDropout1D(Dropout):
    """Drops whole feature channels of a (B, T, C) sequence: Keras ``SpatialDropout1D``.

    The same layer is exported as :data:`LockedDropout` (AWD-LSTM, which is sequence-first) and is fastai's
    ``RNNDropout``: one mask per sample, shared by every time step, so a dropped channel is zero along all of T.

    Args:
        p: probability to drop a channel, in [0, 1).

    Shape:
        Input: (B, T, C). Output: (B, T, C).

    Mask: (B, 1, C), shared across T, redrawn every call.

    Reference: Tompson et al., "Efficient Object Localization Using Convolutional Networks", 2015;
    Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks", 2016.

    Example:
        >>> y = SpatialDropout1D(0.5)(torch.ones(3, 5, 4), generator=torch.Generator().manual_seed(0))
        >>> bool(((y == 0).all(dim=1) | (y != 0).all(dim=1)).all())  # each channel all dropped or all kept
        True
    """

    def __init__(self, p: float) -> None:
        super().__init__(p, shared_dims=(1,))

    def _check_input(self, x: Tensor) -> None:
        _checks.rank("x", x, 3, "(B, T, C)")
        _checks.floating("x", x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


LockedDropout = SpatialDropout1D


class TokenDropout(Dropout):
    """Drops whole time steps of a (B, T, C) sequence: every channel of a dropped step is zero.

    For the id-level form, which replaces dropped ids by an unknown id before the lookup, see :class:`WordDropout`.

    Args:
        p: probability to drop a time step, in [0, 1).

    Shape:
        Input: (B, T, C). Output: (B, T, C).

    Mask: (B, T, 1), shared across C, redrawn every call.

    Example:
        >>> y = TokenDropout(0.5)(torch.ones(2, 6, 3), generator=torch.Generator().manual_seed(0))
        >>> bool(((y == 0).all(dim=2) | (y != 0).all(dim=2)).all())  # each step all dropped or all kept
        True
    """

    def __init__(self, p: float) -> None:
        super().__init__(p, shared_dims=(2,))

    def _check_input(self, x: Tensor) -> None:
        _checks.rank("x", x, 3, "(B, T, C)")
        _checks.floating("x", x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WordDropout(StochasticModule):
    """Id-level word dropout: each id is replaced by ``unk_id`` with probability p, before the embedding lookup.

    Ids carry no magnitude, so nothing is rescaled; padding ids are never replaced. This is the word dropout of
    Iyyer et al. (2015) in the form Bowman et al. (2016) used for the decoder input.

    Args:
        p: probability to replace an id, in [0, 1).
        unk_id: the id that replaces dropped ones (``<unk>``), >= 0.
        padding_idx: an id that is never replaced, or None.

    Shape:
        Input: (B, T) integer ids. Output: (B, T) ids.

    Mask: (B, T), one independent draw per position, redrawn every call.

    Reference: Iyyer et al., "Deep Unordered Composition Rivals Syntactic Methods for Text Classification", 2015;
    Bowman et al., "Generating Sentences from a Continuous Space", 2016.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 8, 0]])
        >>> WordDropout(0.5, unk_id=1, padding_idx=0)(ids, generator=torch.Generator().manual_seed(4))
        tensor([[5, 6, 1, 1, 0]])
    """

    def __init__(self, p: float, unk_id: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.p = _checks.probability("p", p)
        self.unk_id = _checks.integer("unk_id", unk_id, low=0)
        self.padding_idx = None if padding_idx is None else _checks.integer("padding_idx", padding_idx, low=0)

    def sample_masks(self, ids: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The boolean keep-mask (B, T) a training call would use: False where an id becomes ``unk_id``."""
        _checks.ids("ids", ids)
        return M.word_keep_mask(ids, self.p, padding_idx=self.padding_idx, generator=generator)

    def forward(
        self,
        ids: Tensor,
        *,
        masks: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        mask = masks if masks is not None else mask  # masks=: every random layer's name; mask=: the earlier one
        _checks.ids("ids", ids)
        if not self.training:
            return ids
        if mask is None:
            if self.p == 0.0:
                return ids
            mask = self.sample_masks(ids, generator=generator)
        else:
            _checks.mask_shape("mask", mask, tuple(ids.shape))
        return ids.masked_fill(~mask.bool(), self.unk_id)

    def extra_repr(self) -> str:
        s = f"p={self.p}, unk_id={self.unk_id}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


def _noise(layer, x: Tensor, mask: Tensor | None, generator: torch.Generator | None, off: bool) -> Tensor | None:
    """The Gaussian layers' noise for ``x``: None in eval mode or at rate 0 (no draw), else the given or a drawn one."""
    _checks.floating("x", x)
    if not layer.training or off:
        return None
    if mask is None:
        mask = layer.sample_masks(x, generator=generator)
    _checks.mask_shape("mask", mask, tuple(x.shape))
    return mask


class GaussianDropout(StochasticModule):
    """Multiplies every entry by noise drawn from N(1, p / (1 - p)): Keras ``GaussianDropout(rate=p)``.

    The noise has Bernoulli dropout's mean and variance (Srivastava et al., section 10), without zeros. Identity in
    eval mode.

    Args:
        p: the dropout rate it mimics, in [0, 1): the noise's standard deviation is sqrt(p / (1 - p)).

    Shape:
        Input: any shape ``(*)``. Output: the same shape.

    Mask: x's shape (multiplicative noise, not 0/1), redrawn every call.

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting", 2014.

    Example:
        >>> y = GaussianDropout(0.5)(torch.ones(1000), generator=torch.Generator().manual_seed(0))
        >>> round(float(y.mean()), 1), round(float(y.std()), 1)
        (1.0, 1.0)
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = _checks.probability("p", p)

    def sample_masks(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The noise a training call on ``x`` would multiply it by."""
        std = (self.p / (1.0 - self.p)) ** 0.5
        return M.gaussian(tuple(x.shape), 1.0, std, device=x.device, dtype=x.dtype, generator=generator)

    def forward(
        self,
        x: Tensor,
        *,
        masks: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        mask = masks if masks is not None else mask  # masks=: every random layer's name; mask=: the earlier one
        noise = _noise(self, x, mask, generator, off=self.p == 0)
        return x if noise is None else x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GaussianNoise(StochasticModule):
    """Adds noise drawn from N(0, std^2) to every entry in training: Keras ``GaussianNoise(stddev=std)``.

    Args:
        std: the noise's standard deviation, >= 0.

    Shape:
        Input: any shape ``(*)``. Output: the same shape.

    Mask: x's shape (additive noise), redrawn every call.

    Example:
        >>> GaussianNoise(0.1).eval()(torch.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0 or std == float("inf"):
            raise _checks.invalid("std", "a finite float >= 0", repr(std))
        self.std = float(std)

    def sample_masks(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The noise a training call on ``x`` would add."""
        return M.gaussian(tuple(x.shape), 0.0, self.std, device=x.device, dtype=x.dtype, generator=generator)

    def forward(
        self,
        x: Tensor,
        *,
        masks: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        mask = masks if masks is not None else mask  # masks=: every random layer's name; mask=: the earlier one
        noise = _noise(self, x, mask, generator, off=self.std == 0)
        return x if noise is None else x + noise

    def extra_repr(self) -> str:
        return f"std={self.std}"

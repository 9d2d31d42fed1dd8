"""Batch-first 1-D convolution and pooling, as Keras' ``Conv1D``, ``MaxPooling1D`` and global pooling layers.

PyTorch's ``nn.Conv1d`` and ``nn.MaxPool1d`` take (B, C, T); a text model holds (B, T, C). These layers take and
return (B, T, C), so an ``Embedding -> Conv1D -> MaxPool1D -> LSTM`` stack reads like its Keras original. Each
also maps a padding mask (B, T) (True at real tokens) to the mask of its output, so that the LSTM after them can
skip padded steps: an output step is real when any input step it reads is real.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks

ACTIVATIONS = {"linear": None, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
PADDINGS = ("valid", "same", "causal")


def same_padding(T: int, span: int, stride: int) -> tuple[int, int]:
    """Keras' "same" padding (left, right) over T for a window spanning ``span`` steps: T_out = ceil(T / stride),
    the odd step on the right."""
    total = max((-(-T // stride) - 1) * stride + span - T, 0)
    return total // 2, total - total // 2


def _pool_mask(mask: Tensor, size: int, stride: int) -> Tensor:
    """Padding mask (B, T) of a window-``size``, step-``stride`` operation with no padding: (B, T_out)."""
    m = mask.to(torch.float32).unsqueeze(1)  # (B, 1, T)
    return F.max_pool1d(m, size, stride).squeeze(1) > 0  # (B, T_out)


class Conv1D(nn.Module):
    """Keras ``Conv1D(filters, kernel_size, strides, padding, dilation_rate, activation, use_bias)`` on (B, T, C).

    Args:
        in_channels: C of the input.
        filters: output channels.
        kernel_size: K, window length over T.
        activation: "linear" (none), "relu", "tanh" or "sigmoid".
        padding: "valid" (no padding), "same" (T_out = ceil(T / strides); Keras' split of the padding, the extra
            step on the right for even windows) or "causal" (zeros on the left only: step t reads t and before).
        strides: the step between windows.
        dilation_rate: d, the distance between a window's taps (its span is (K - 1) * d + 1).
        bias: add a learned bias per filter (Keras' ``use_bias``).

    Shape:
        Input (B, T, C). Output (B, T_out, filters); T_out = (T - (K - 1) * d - 1) // strides + 1 for "valid",
        ceil(T / strides) for "same", (T - 1) // strides + 1 for "causal".

    Example:
        >>> conv = Conv1D(16, 64, 5, activation="relu")
        >>> conv(torch.randn(2, 200, 16)).shape
        torch.Size([2, 196, 64])
        >>> Conv1D(16, 8, 4, padding="same", dilation_rate=2)(torch.randn(2, 200, 16)).shape
        torch.Size([2, 200, 8])
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel_size: int,
        activation: str = "linear",
        padding: str = "valid",
        strides: int = 1,
        dilation_rate: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = _checks.integer("in_channels", in_channels, low=1)
        self.filters = _checks.integer("filters", filters, low=1)
        self.kernel_size = _checks.integer("kernel_size", kernel_size, low=1)
        self.activation = _checks.choice("activation", activation, tuple(ACTIVATIONS))
        self.padding = _checks.choice("padding", padding, PADDINGS)
        self.strides = _checks.integer("strides", strides, low=1)
        self.dilation_rate = _checks.integer("dilation_rate", dilation_rate, low=1)
        if not isinstance(bias, bool):
            raise _checks.invalid("bias", "a bool", repr(bias))
        self.conv = nn.Conv1d(in_channels, filters, kernel_size, stride=strides, dilation=dilation_rate, bias=bias)

    def _pads(self, T: int) -> tuple[int, int]:
        """(left, right) zeros added over T."""
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        if self.padding == "causal":
            return span - 1, 0
        if self.padding == "same":
            return same_padding(T, span, self.strides)
        return 0, 0

    def forward(self, x: Tensor) -> Tensor:
        _checks.rank("x", x, 3, "BTC")
        x = x.transpose(1, 2)  # (B, T, C) -> (B, C, T)
        left, right = self._pads(x.shape[-1])
        if left or right:
            x = F.pad(x, (left, right))  # (B, C, left + T + right)
        y = self.conv(x).transpose(1, 2)  # (B, filters, T_out) -> (B, T_out, filters)
        act = ACTIVATIONS[self.activation]
        return y if act is None else act(y)

    def output_mask(self, mask: Tensor) -> Tensor:
        """The padding mask (B, T_out) of the output for an input mask (B, T): a step is real when any tap of its
        window reads a real step."""
        left, right = self._pads(mask.shape[-1])
        m = F.pad(mask.to(torch.float32).unsqueeze(1), (left, right))  # (B, 1, T + pads), padding is not real
        return F.max_pool1d(m, self.kernel_size, self.strides, dilation=self.dilation_rate).squeeze(1) > 0

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.filters}, kernel_size={self.kernel_size}"
        s += f", activation={self.activation!r}" if self.activation != "linear" else ""
        s += f", padding={self.padding!r}" if self.padding != "valid" else ""
        s += f", strides={self.strides}" if self.strides != 1 else ""
        s += f", dilation_rate={self.dilation_rate}" if self.dilation_rate != 1 else ""
        return s + (", bias=False" if self.conv.bias is None else "")


class MaxPool1D(nn.Module):
    """Keras ``MaxPooling1D(pool_size, strides=pool_size)`` over T of (B, T, C), no padding.

    Shape:
        Input (B, T, C). Output (B, (T - pool_size) // strides + 1, C).

    Example:
        >>> MaxPool1D(4)(torch.randn(2, 196, 64)).shape
        torch.Size([2, 49, 64])
    """

    def __init__(self, pool_size: int = 2, strides: int | None = None) -> None:
        super().__init__()
        self.pool_size = _checks.integer("pool_size", pool_size, low=1)
        self.strides = self.pool_size if strides is None else _checks.integer("strides", strides, low=1)

    def forward(self, x: Tensor) -> Tensor:
        _checks.rank("x", x, 3, "BTC")
        return F.max_pool1d(x.transpose(1, 2), self.pool_size, self.strides).transpose(1, 2)

    def output_mask(self, mask: Tensor) -> Tensor:
        return _pool_mask(mask, self.pool_size, self.strides)

    def extra_repr(self) -> str:
        return f"{self.pool_size}" + (f", strides={self.strides}" if self.strides != self.pool_size else "")


class GlobalMaxPool1D(nn.Module):
    """Max over T of (B, T, C) -> (B, C); with a padding mask (B, T), padded steps are left out."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        _checks.rank("x", x, 3, "BTC")
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return x.amax(dim=1)


class GlobalAveragePool1D(nn.Module):
    """Mean over T of (B, T, C) -> (B, C); with a padding mask (B, T), the mean of the real steps only."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        _checks.rank("x", x, 3, "BTC")
        if mask is None:
            return x.mean(dim=1)
        w = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)

"""The modules a converted Keras model is made of: one step per Keras layer, the padding mask passed along as
Keras passes it, and :class:`KerasModel`, their chain (see :mod:`embdrop.interop.keras`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks
from embdrop.layers.conv import GlobalAveragePool1D, same_padding
from embdrop.layers.embedding import Embedding
from embdrop.layers.recurrent_stack import merge

SUPPORTED = (
    "InputLayer", "Embedding", "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "Conv1D",
    "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Flatten", "Dense",
    "Activation", "SimpleRNN", "LSTM", "GRU", "Bidirectional",
)  # fmt: skip

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,  # Keras' default is the exact GELU, as torch's
    "exponential": torch.exp,
}


class KerasImportError(_checks.UsageError):
    """A model with a layer or an option that :func:`from_keras` does not convert; nothing is returned."""


def _unsupported(index: int, layer: dict, what: str) -> KerasImportError:
    name = layer.get("config", {}).get("name", "?")
    expected = f"a Keras model of the supported layers ({', '.join(SUPPORTED)}) and options"
    return KerasImportError("model", expected, f"layer {index} '{name}' ({layer.get('class_name')}) with {what}")


# ----------------------------------------------------------------------------------------------- steps
class _Step(nn.Module):
    """One converted layer: ``forward(x, mask) -> (x, mask)``, the mask (B, T) True at real steps, or None."""

    keeps_mask = True

    def __init__(self, module: nn.Module | None = None, activation: str = "linear") -> None:
        super().__init__()
        self.module = module
        self.activation = activation

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        y = x if self.module is None else self.module(x)
        return ACTIVATIONS[self.activation](y), (mask if self.keeps_mask else None)


class _MaskDropping(_Step):
    keeps_mask = False


class _Embed(_Step):
    def __init__(self, module: Embedding, mask_zero: bool) -> None:
        super().__init__(module)
        self.mask_zero = mask_zero

    def forward(self, ids: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return self.module(ids), (ids != 0 if self.mask_zero else None)  # (B, T, E), (B, T)


class _Pool(_Step):
    """MaxPooling1D / AveragePooling1D over T of (B, T, C), "valid" or "same" (Keras' padding split)."""

    keeps_mask = False

    def __init__(self, kind: str, size: int, strides: int, padding: str) -> None:
        super().__init__()
        self.kind, self.size, self.strides, self.padding = kind, size, strides, padding

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, None]:
        x = x.transpose(1, 2)  # (B, C, T)
        T = x.shape[-1]
        left = right = 0
        if self.padding == "same":
            left, right = same_padding(T, self.size, self.strides)
        if self.kind == "max":
            y = F.max_pool1d(F.pad(x, (left, right), value=float("-inf")), self.size, self.strides)
        else:  # the mean of the window's real steps, as Keras (padding is not counted)
            ones = F.pad(torch.ones_like(x[:, :1]), (left, right))  # (B, 1, T + pads)
            sums = F.avg_pool1d(F.pad(x, (left, right)), self.size, self.strides)  # padded zeros add nothing
            y = sums / F.avg_pool1d(ones, self.size, self.strides)  # divided by the share of real steps
        return y.transpose(1, 2), None  # (B, T_out, C)


class _GlobalPool(_Step):
    keeps_mask = False

    def __init__(self, kind: str, keepdims: bool) -> None:
        super().__init__()
        self.kind, self.keepdims = kind, keepdims
        self.average = GlobalAveragePool1D()

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, None]:
        y = x.amax(dim=1) if self.kind == "max" else self.average(x, mask)  # (B, C); max reads every step, as Keras
        return (y.unsqueeze(1) if self.keepdims else y), None


class _Flatten(_Step):
    keeps_mask = False

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, None]:
        return x.reshape(x.shape[0], -1), None  # (B, T * C)


class _RecurrentStep(_Step):
    """An LSTM or GRU (``bidirectional``: a Bidirectional wrapper with ``merge``) with Keras' outputs.

    ``return_sequences``: (B, T, H) with the mask passed on; padded steps output the previous output (Keras'
    default), or zeros inside Bidirectional. Otherwise (B, H), the state after each row's last real step. With
    ``return_state``, ``pick`` is the output the next layer reads: 1 the final h, 2 the final c.
    """

    def __init__(
        self, rnn: nn.Module, return_sequences: bool, go_backwards: bool, merge: str | None, pick: int = 0
    ) -> None:
        super().__init__(rnn)
        self.return_sequences, self.go_backwards, self.merge = return_sequences, go_backwards, merge
        self.pick = pick  # return_state: which output the next layer reads (0 the output, 1 h, 2 c)

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        given = mask
        if self.go_backwards:  # Keras reverses the whole time axis, padding included, and returns that order
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        out, state = self.module(x, lengths=mask)  # out (B, T, H * directions)
        if self.pick:  # a final state (B, H): h, or c of an LSTM
            return (state if not isinstance(state, tuple) else state[self.pick - 1])[0], None
        if self.return_sequences:  # merged by the layer itself (merge_mode)
            y = out if self.merge is not None or mask is None else _carry_forward(out, mask)
        else:
            h = state[0] if isinstance(state, tuple) else state  # (directions, B, H)
            y = h[0] if self.merge is None else merge(h[0], h[1], self.merge)  # (B, H) or (B, 2H)
        return y, (given if self.return_sequences else None)  # Keras passes the mask on as it came


def _carry_forward(out: Tensor, mask: Tensor) -> Tensor:
    """Padded steps take the output of the last real step before them (zeros before the first)."""
    T = out.shape[1]
    t = torch.arange(T, device=out.device).expand_as(mask)  # (B, T)
    last = torch.where(mask, t, torch.full_like(t, -1)).cummax(dim=1).values  # (B, T): last real step so far
    picked = out.gather(1, last.clamp_min(0).unsqueeze(-1).expand_as(out))
    return torch.where((last >= 0).unsqueeze(-1), picked, torch.zeros_like(out))


class KerasModel(nn.Module):
    """A converted Keras model: ``forward(ids)`` (B, T) ints -> Keras' output. ``steps`` holds one module per
    Keras layer, named by Keras' key for it in the weights file: its class in snake case, ``_1``, ``_2``, ... for the
    second and later of a class (``embedding``, ``lstm``, ``dense``, ``dense_1``), whatever the layers' names."""

    def __init__(self, steps: dict[str, _Step], config: dict) -> None:
        super().__init__()
        self.steps = nn.ModuleDict(steps)
        self.keras_config = config  # the Keras config.json, kept for `embdrop convert` and a reload

    def forward(self, ids: Tensor) -> Tensor:
        x, mask = ids, None
        for step in self.steps.values():
            x, mask = step(x, mask)
        return x

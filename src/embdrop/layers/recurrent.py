"""``LSTM`` and ``GRU`` with Keras' ``dropout``/``recurrent_dropout``, weight drop, zoneout and naive dropout.

Parameters are named and shaped as in ``nn.LSTM``/``nn.GRU`` (``weight_ih_l0`` (G*H, C), ``weight_hh_l0`` (G*H, H),
``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``; gate order i, f, g, o and r, z, n), so ``load_state_dict`` from
torch's layers works and, with every dropout at zero, outputs and gradients equal theirs. Which implementation
runs (PyTorch's fused layers, the fused C++ kernel or the reference loop; the same result at different speeds) is
decided per layer and direction by :func:`embdrop.functional.recurrent.run`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
from torch import Tensor, nn

from embdrop import _checks
from embdrop.functional import masks as M
from embdrop.functional import recurrent as dispatch
from embdrop.functional.recurrent import RecurrentMasks
from embdrop.layers import _padding as padding
from embdrop.layers.base import StochasticModule

MERGE_MODES = ("concat", "sum", "ave", "mul")


def merge(a: Tensor, b: Tensor, mode: str) -> Tensor:
    """The two directions' outputs (B, T, H) each, combined as Keras' Bidirectional ``merge_mode``."""
    if mode == "concat":
        return torch.cat([a, b], dim=-1)  # (B, T, 2H)
    if mode == "sum":
        return a + b
    if mode == "ave":
        return (a + b) / 2
    return a * b


class _Recurrent(StochasticModule):
    """The stack shared by :class:`LSTM` and :class:`GRU`; the subclass gives the cell's facts below."""

    cell = ""  # the cell's maths in embdrop.kernels: "lstm" or "gru"
    gate_order: tuple[str, ...] = ()  # the gate blocks of weight_ih/weight_hh, in torch's order
    gates = 0  # G = len(gate_order)
    has_cell_state = False  # LSTM's c beside h

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        weight_dropout: float = 0.0,
        zoneout: float = 0.0,
        variational: bool = True,
        bidirectional: bool = False,
        bias: bool = True,
        merge_mode: str = "concat",
    ) -> None:
        super().__init__()
        self.input_size = _checks.integer("input_size", input_size, low=1)
        self.hidden_size = _checks.integer("hidden_size", hidden_size, low=1)
        self.num_layers = _checks.integer("num_layers", num_layers, low=1)
        self.dropout = _checks.probability("dropout", dropout)
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout)
        self.weight_dropout = _checks.probability("weight_dropout", weight_dropout)
        self.zoneout = _checks.probability("zoneout", zoneout)
        for name, value in (("variational", variational), ("bidirectional", bidirectional), ("bias", bias)):
            if not isinstance(value, bool):
                raise _checks.invalid(name, "a bool", repr(value))
        if not variational and self.recurrent_dropout > 0:
            raise _checks.invalid(
                "recurrent_dropout",
                "0.0 when variational=False (naive dropout has no mask on the recurrent connections)",
                repr(recurrent_dropout),
            )
        if not variational and self.dropout == 0:
            warnings.warn(
                "variational=False changes only how the `dropout` masks are drawn; with dropout=0.0 it does nothing.",
                stacklevel=2,
            )
        self.merge_mode = _checks.choice("merge_mode", merge_mode, MERGE_MODES)
        if merge_mode != "concat" and not bidirectional:
            warnings.warn(f"merge_mode={merge_mode!r} combines two directions; with bidirectional=False it does "
                          "nothing.", stacklevel=2)  # fmt: skip
        self.variational = variational
        self.bidirectional = bidirectional
        self.bias = bias
        G, H = self.gates, self.hidden_size
        for layer in range(self.num_layers):
            c_in = self.input_size if layer == 0 else self.output_size
            for suffix in self._suffixes():
                self.register_parameter(f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(G * H, c_in)))
                self.register_parameter(f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(G * H, H)))
                if bias:
                    self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(G * H)))
                    self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(G * H)))
        self.reset_parameters()

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features of the output: H, or 2H for two directions concatenated."""
        return self.hidden_size * (2 if self.bidirectional and self.merge_mode == "concat" else 1)

    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.directions]

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as ``nn.LSTM``/``nn.GRU``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)

    def _weights(self, layer: int, d: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        s = self._suffixes()[d]
        get = lambda kind: getattr(self, f"{kind}_l{layer}{s}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    # ----------------------------------------------------------------------------------------------- masks
    def sample_masks(self, x: Tensor, *, generator: torch.Generator | None = None) -> RecurrentMasks:
        """The masks a training call on ``x`` (B, T, C) would draw (see :class:`RecurrentMasks`)."""
        self._check_input(x)
        return self._draw_masks(x, generator, deferred=False)

    def _draw_masks(self, x: Tensor, generator: torch.Generator | None, deferred: bool) -> RecurrentMasks:
        """``deferred``: the weight-drop masks as :class:`~embdrop.functional.masks.HashedKeep` where the kernel can
        apply them unwritten (the same draws and bits as the tensors)."""
        B, T, _ = x.shape
        G, H = self.gates, self.hidden_size
        kw = {"device": x.device, "dtype": x.dtype, "generator": generator}
        out = RecurrentMasks()
        draw_w = M.deferred_keep_hashed if deferred else M.bernoulli_keep_hashed
        for layer in range(self.num_layers):
            c_in = self.input_size if layer == 0 else self.output_size
            for masks in (out.input, out.recurrent, out.weight, out.zoneout_h, out.zoneout_c):
                masks.append([])  # this layer's row: one entry per direction
            for _ in range(self.directions):  # the draws in this order, direction by direction (seeds reproduce)
                in_shape = (G if self.recurrent_dropout > 0 else 1, B, c_in) if self.variational else (B, T, c_in)
                out.input[-1].append(self._draw(M.bernoulli_keep, in_shape, self.dropout, kw))
                out.recurrent[-1].append(self._draw(M.bernoulli_keep, (G, B, H), self.recurrent_dropout, kw))
                out.weight[-1].append(self._draw(draw_w, (G * H, H), self.weight_dropout, kw))
                out.zoneout_h[-1].append(self._draw(M.bernoulli_keep_hashed, (B, T, H), self.zoneout, kw))
                zc = self.zoneout if self.has_cell_state else 0.0
                out.zoneout_c[-1].append(self._draw(M.bernoulli_keep_hashed, (B, T, H), zc, kw))
        return out

    @staticmethod
    def _draw(sample, shape: tuple[int, ...], p: float, kw: dict):
        """A mask of ``shape`` drawn by ``sample`` at rate p; None (and no draw) at p == 0."""
        return sample(shape, p, **kw) if p > 0 else None

    @property
    def _random(self) -> bool:
        return any(p > 0 for p in (self.dropout, self.recurrent_dropout, self.weight_dropout, self.zoneout))

    # ----------------------------------------------------------------------------------------------- forward
    def _check_input(self, x: Tensor) -> None:
        _checks.rank("x", x, 3, "(B, T, C)")
        _checks.floating("x", x)
        if x.shape[-1] != self.input_size:
            raise _checks.invalid("x", f"a tensor of shape (B, T, {self.input_size})", _checks.describe(x))

    def _initial_state(self, state, x: Tensor):
        shape = (self.num_layers * self.directions, x.shape[0], self.hidden_size)
        zeros = lambda: x.new_zeros(shape)  # noqa: E731
        if state is None:
            return (zeros(), zeros()) if self.has_cell_state else zeros()
        parts = state if self.has_cell_state else (state,)
        if self.has_cell_state and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise _checks.invalid("state", "a tuple (h, c) of tensors (L * directions, B, H)", type(state).__name__)
        for s in parts:
            if not isinstance(s, Tensor) or tuple(s.shape) != shape or s.dtype != x.dtype or s.device != x.device:
                got = f"{_checks.describe(s)} on {s.device}" if isinstance(s, Tensor) else type(s).__name__
                raise _checks.invalid("state", f"tensors of shape {shape}, dtype {x.dtype} on {x.device}", got)
        return tuple(state) if self.has_cell_state else state

    def forward(
        self,
        x: Tensor,
        state: Tensor | tuple[Tensor, Tensor] | None = None,
        *,
        lengths: Tensor | None = None,
        masks: RecurrentMasks | None = None,
        generator: torch.Generator | None = None,
    ):
        self._check_input(x)
        if x.dtype != self.weight_ih_l0.dtype and torch.is_autocast_enabled(x.device.type):
            x = x.to(self.weight_ih_l0.dtype)  # a lower-precision op's output: the state stays in the weights' dtype
        if x.dtype != self.weight_ih_l0.dtype:
            raise _checks.invalid(
                "x",
                f"a tensor of the layer's dtype {self.weight_ih_l0.dtype} (convert the input, or the layer with "
                f".to({x.dtype}))",
                _checks.describe(x),
            )
        B, T, _ = x.shape
        start, n = padding.spans(lengths, B, T)
        if T == 0 or B == 0:  # no step to run: an empty output and the initial state (nn.LSTM refuses T = 0)
            st = self._initial_state(state, x)
            return x.new_zeros(B, T, self.output_size), st
        if masks is None and self.training and self._random:
            masks = self._draw_masks(x, generator, deferred=True)
        st = self._initial_state(state, x)
        h0, c0 = st if self.has_cell_state else (st, None)
        rolled = start is not None and (_checks.tracing() or bool((start > 0).any()))  # a shift of 0 is no roll
        if rolled:
            x = padding.roll(x, start)  # pre-padded rows moved to the front: every row is post-padded from here on
        inp = x
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                k = layer * self.directions + d
                o, h, c = self._run(layer, d, inp, h0[k], None if c0 is None else c0[k], masks, n)
                outs.append(o)
                hs.append(h)
                cs.append(c)
            inp = outs[0] if len(outs) == 1 else merge(outs[0], outs[1], self.merge_mode)  # (B, T, output_size)
        out = padding.roll(inp, -start) if rolled else inp
        h = torch.stack(hs)
        return (out, (h, torch.stack(cs))) if self.has_cell_state else (out, h)

    def _options(self) -> dispatch.Options:
        return dispatch.Options(self.cell, self.dropout, self.recurrent_dropout, self.weight_dropout, self.zoneout,
                                self.variational, self.bias, self.training)  # fmt: skip

    def _run(self, layer, d, inp, h0, c0, masks: RecurrentMasks | None, n):
        """One layer, one direction: (B, T, C) -> (B, T, H), final h, final c."""
        if d == 1:
            inp = padding.reverse(inp, n)
        out, h, c = dispatch.run(inp, h0, c0, self._weights(layer, d), masks, (layer, d), self._options(), n)
        if d == 1:
            out = padding.reverse(out, n)
        return out, h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = {
            "num_layers": 1,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
            "weight_dropout": 0.0,
            "zoneout": 0.0,
            "variational": True,
            "bidirectional": False,
            "bias": True,
            "merge_mode": "concat",
        }
        for k, v in defaults.items():
            if getattr(self, k) != v:
                s += f", {k}={getattr(self, k)}"
        return s


class LSTM(_Recurrent):
    """LSTM with Keras' ``dropout`` and ``recurrent_dropout``, weight drop, zoneout and naive dropout; batch first.

    A stack of ``num_layers`` layers, each like one Keras ``LSTM(return_sequences=True)`` layer: the input of every
    layer (the previous layer's output for layers above the first) gets the ``dropout`` masks, so between layers
    this is variational (locked) dropout with a mask fixed across T. With every rate at 0 the layer computes
    exactly what ``nn.LSTM(..., batch_first=True)`` computes with the same weights.

    Args:
        input_size: C, features of the input.
        hidden_size: H.
        num_layers: L, stacked layers.
        dropout: probability to drop an input unit, one mask per sample fixed across T (Keras ``dropout``); with
            ``recurrent_dropout > 0`` each of the 4 gates gets its own mask (Keras' implementation 1).
        recurrent_dropout: probability to drop a unit of h(t-1), one mask per sample and gate, fixed across T
            (Keras ``recurrent_dropout``, Gal & Ghahramani 2016). The cell state c is never masked.
        weight_dropout: DropConnect on ``weight_hh``: one mask per call, shared by the batch (AWD-LSTM).
        zoneout: probability that a unit of h and c keeps its previous value at a step (training); at eval the
            expectation ``p * previous + (1 - p) * new`` (Krueger et al. 2017). On CPU it runs in the fused
            kernel.
        variational: False gives naive dropout (Zaremba et al. 2014): a new input mask at every step, nothing on
            the recurrent connections (``recurrent_dropout`` must then be 0).
        bidirectional: a second, reverse direction with its own weights and masks.
        merge_mode: how the two directions' outputs combine (Keras' Bidirectional): "concat" (2H features),
            "sum", "ave" or "mul" (H features).
        bias: learn the biases ``bias_ih`` and ``bias_hh``.

    Shape:
        Input: x (B, T, C); state (h, c), each (L * directions, B, H); lengths (B,) ints, or a (B, T) bool padding
        mask (True at real steps; pre- or post-padding). Output: (B, T, H), or (B, T, 2H) bidirectional with
        ``merge_mode="concat"``, and the final (h, c) of every direction.
        Padded steps leave the state untouched and output zeros, as Keras masking and packed sequences do. T = 0
        gives an empty output and the initial state.

    Mask: input (4 or 1, B, C) per layer and direction, fixed across T, redrawn every call ((B, T, C), redrawn
    every step, when ``variational=False``); recurrent (4, B, H), fixed across T, redrawn every call; weight
    (4H, H), shared by the batch, redrawn every call (hashed from one random key, ``bernoulli_keep_hashed``);
    zoneout (B, T, H) for h and for c, redrawn every step (hashed, one key per mask).
    ``sample_masks(x)`` returns them and ``forward(..., masks=...)`` applies given ones.

    Reference: Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks",
    2016; Zaremba et al., "Recurrent Neural Network Regularization", 2014; Merity et al., "Regularizing and
    Optimizing LSTM Language Models", 2017; Krueger et al., "Zoneout", 2017.

    Example:
        >>> rnn = LSTM(16, 32, dropout=0.5, recurrent_dropout=0.5)
        >>> out, (h, c) = rnn(torch.randn(4, 10, 16), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape, bool((out[3, 1:] == 0).all())
        (torch.Size([4, 10, 32]), torch.Size([1, 4, 32]), True)
    """

    cell = "lstm"
    gate_order = ("i", "f", "g", "o")
    gates = 4
    has_cell_state = True


class GRU(_Recurrent):
    """GRU with Keras' ``dropout`` and ``recurrent_dropout``, weight drop, zoneout and naive dropout; batch first.

    PyTorch's GRU (Keras' ``reset_after=True``): ``n = tanh(W_n x + b_in + r * (U_n h(t-1) + b_hn))``,
    ``h = (1 - z) * n + z * h(t-1)``. A stack of ``num_layers`` layers, each like one Keras
    ``GRU(return_sequences=True, reset_after=True)`` layer, the ``dropout`` masks on every layer's input (variational
    between layers). With every rate at 0 the layer computes exactly what ``nn.GRU(..., batch_first=True)``
    computes with the same weights.

    Args:
        input_size: C, features of the input.
        hidden_size: H.
        num_layers: L, stacked layers.
        dropout: probability to drop an input unit, one mask per sample fixed across T (Keras ``dropout``); with
            ``recurrent_dropout > 0`` each of the 3 gates gets its own mask (Keras' implementation 1).
        recurrent_dropout: probability to drop a unit of h(t-1) in each gate's recurrent product, one mask per
            sample and gate, fixed across T (Keras ``recurrent_dropout``, Gal & Ghahramani 2016). The update
            ``h = z * h(t-1) + (1 - z) * n`` uses the undropped h(t-1).
        weight_dropout: DropConnect on ``weight_hh``: one mask per call, shared by the batch (AWD-LSTM).
        zoneout: probability that a unit of h keeps its previous value at a step (training); at eval the
            expectation ``p * previous + (1 - p) * new`` (Krueger et al. 2017). On CPU it runs in the fused
            kernel.
        variational: False gives naive dropout (Zaremba et al. 2014): a new input mask at every step, nothing on
            the recurrent connections (``recurrent_dropout`` must then be 0).
        bidirectional: a second, reverse direction with its own weights and masks.
        merge_mode: how the two directions' outputs combine (Keras' Bidirectional): "concat" (2H features),
            "sum", "ave" or "mul" (H features).
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        reset_after: True (PyTorch's and Keras' default) applies the reset gate after the recurrent product;
            False is Cho et al.'s original form, Keras' ``reset_after=False``:
            ``n = tanh(W_n x + b_in + U_n (r * h(t-1)) + b_hn)`` (``recurrent_dropout``'s mask on h(t-1) inside).
            It has no fused PyTorch kernel: it runs the reference loop.

    Shape:
        Input: x (B, T, C); state h (L * directions, B, H); lengths (B,) ints, or a (B, T) bool padding mask (True
        at real steps; pre- or post-padding). Output: (B, T, H), or (B, T, 2H) bidirectional with
        ``merge_mode="concat"``, and the final h of every direction. Padded steps leave
        the state untouched and output zeros. T = 0 gives an empty output and the initial state.

    Mask: input (3 or 1, B, C) per layer and direction, fixed across T, redrawn every call ((B, T, C), redrawn
    every step, when ``variational=False``); recurrent (3, B, H), fixed across T, redrawn every call; weight
    (3H, H), shared by the batch, redrawn every call (hashed from one random key, ``bernoulli_keep_hashed``);
    zoneout (B, T, H), redrawn every step (hashed, one key per mask).
    ``sample_masks(x)`` returns them and ``forward(..., masks=...)`` applies given ones.

    Reference: Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks",
    2016; Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder", 2014; Krueger et al.,
    "Zoneout", 2017.

    Example:
        >>> rnn = GRU(16, 32, dropout=0.5, recurrent_dropout=0.5)
        >>> out, h = rnn(torch.randn(4, 10, 16), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape, bool((out[3, 1:] == 0).all())
        (torch.Size([4, 10, 32]), torch.Size([1, 4, 32]), True)
    """

    cell = "gru"
    gate_order = ("r", "z", "n")
    gates = 3

    def __init__(self, *args, reset_after: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(reset_after, bool):
            raise _checks.invalid("reset_after", "a bool", repr(reset_after))
        self.reset_after = reset_after

    def _options(self) -> dispatch.Options:
        return dataclasses.replace(super()._options(), reset_after=self.reset_after)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", reset_after=False" if not self.reset_after else "")


class SimpleRNN(_Recurrent):
    """Elman RNN with Keras' ``dropout`` and ``recurrent_dropout``, weight drop, zoneout and naive dropout; batch first.

    ``h(t) = tanh(W x(t) + b_ih + U h(t-1) + b_hh)``, Keras' ``SimpleRNN`` (its one bias is ``bias_ih``) and
    ``nn.RNN(nonlinearity="tanh")``. With every rate at 0 (and no padding) it runs PyTorch's fused RNN; with
    recurrent masks or padding, the reference loop.

    Args:
        input_size: C, features of the input.
        hidden_size: H.
        num_layers: L, stacked layers.
        dropout: probability to drop an input unit, one mask per sample fixed across T (Keras ``dropout``).
        recurrent_dropout: probability to drop a unit of h(t-1), one mask per sample fixed across T.
        weight_dropout: DropConnect on ``weight_hh``: one mask per call, shared by the batch.
        zoneout: probability that a unit of h keeps its previous value at a step (training).
        variational: False gives naive dropout: a new input mask at every step (``recurrent_dropout`` must be 0).
        bidirectional: a second, reverse direction with its own weights and masks.
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        merge_mode: how two directions combine: "concat", "sum", "ave" or "mul".

    Shape:
        Input: x (B, T, C); state h (L * directions, B, H); lengths (B,) ints, or a (B, T) bool padding mask.
        Output: (B, T, H) (2H bidirectional with "concat"), and the final h of every direction.

    Mask: input (1, B, C) per layer and direction, fixed across T, redrawn every call ((B, T, C), redrawn every
    step, when ``variational=False``); recurrent (1, B, H), fixed across T, redrawn every call; weight (H, H),
    shared by the batch, redrawn every call (hashed from one random key); zoneout (B, T, H), redrawn every step
    (hashed).

    Reference: Elman, "Finding Structure in Time", 1990; Gal & Ghahramani, 2016 (the dropout masks).

    Example:
        >>> rnn = SimpleRNN(16, 32, dropout=0.5, recurrent_dropout=0.5)
        >>> out, h = rnn(torch.randn(4, 10, 16), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 32]), torch.Size([1, 4, 32]))
    """

    cell = "rnn"
    gate_order = ("h",)
    gates = 1

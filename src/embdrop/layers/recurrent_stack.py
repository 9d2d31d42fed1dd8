"""The stack :class:`~embdrop.LSTM`, :class:`~embdrop.GRU` and :class:`~embdrop.SimpleRNN` share: weights in
``nn.LSTM``'s layout, masks drawn per layer and direction, padding, two directions merged as Keras' Bidirectional;
each layer and direction runs through :func:`embdrop.functional.recurrent.run`, which picks the implementation."""

from __future__ import annotations

import functools
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


class RecurrentStack(StochasticModule):
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
        draw_z = M.bernoulli_keep_hashed  # the same draws either way: one key per mask
        if deferred and self.zoneout > 0 and dispatch.hashes_zoneout(x.device, self.cell):
            draw_z = functools.partial(M.deferred_keep_hashed, anywhere=True)  # keys: the GPU kernels hash them
        for layer in range(self.num_layers):
            c_in = self.input_size if layer == 0 else self.output_size
            for masks in (out.input, out.recurrent, out.weight, out.zoneout_h, out.zoneout_c):
                masks.append([])  # this layer's row: one entry per direction
            for _ in range(self.directions):  # the draws in this order, direction by direction (seeds reproduce)
                in_shape = (G if self.recurrent_dropout > 0 else 1, B, c_in) if self.variational else (B, T, c_in)
                out.input[-1].append(self._draw(M.bernoulli_keep, in_shape, self.dropout, kw))
                out.recurrent[-1].append(self._draw(M.bernoulli_keep, (G, B, H), self.recurrent_dropout, kw))
                out.weight[-1].append(self._draw(draw_w, (G * H, H), self.weight_dropout, kw))
                out.zoneout_h[-1].append(self._draw(draw_z, (B, T, H), self.zoneout, kw))
                zc = self.zoneout if self.has_cell_state else 0.0
                out.zoneout_c[-1].append(self._draw(draw_z, (B, T, H), zc, kw))
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
        # one layer, one direction: the output's rotation back goes to the run (the CPU kernel writes it rotated)
        shift = start if rolled and self.num_layers == 1 and self.directions == 1 else None
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                k = layer * self.directions + d
                o, h, c = self._run(layer, d, inp, h0[k], None if c0 is None else c0[k], masks, n, shift)
                outs.append(o)
                hs.append(h)
                cs.append(c)
            inp = outs[0] if len(outs) == 1 else merge(outs[0], outs[1], self.merge_mode)  # (B, T, output_size)
        out = padding.roll(inp, -start) if rolled and shift is None else inp
        h = torch.stack(hs)
        return (out, (h, torch.stack(cs))) if self.has_cell_state else (out, h)

    def _options(self) -> dispatch.Options:
        return dispatch.Options(self.cell, self.dropout, self.recurrent_dropout, self.weight_dropout, self.zoneout,
                                self.variational, self.bias, self.training)  # fmt: skip

    def _run(self, layer, d, inp, h0, c0, masks: RecurrentMasks | None, n, shift=None):
        """One layer, one direction: (B, T, C) -> (B, T, H) (rows rotated forward by ``shift``), final h, final c."""
        if d == 1:
            inp = padding.reverse(inp, n)
        out, h, c = dispatch.run(inp, h0, c0, self._weights(layer, d), masks, (layer, d), self._options(), n, shift)
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

"""A Keras config and its weights -> :class:`~embdrop.interop.keras_model.KerasModel`: one converter per Keras
layer class, each checking the config values it reads (see :mod:`embdrop.interop.keras` for the weight mapping)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from embdrop.interop.keras_archive import _snake, layer_configs
from embdrop.interop.keras_model import (
    ACTIVATIONS,
    SUPPORTED,
    KerasImportError,
    KerasModel,
    _Embed,
    _Flatten,
    _GlobalPool,
    _MaskDropping,
    _Pool,
    _RecurrentStep,
    _Step,
    _unsupported,
)
from embdrop.layers.conv import Conv1D
from embdrop.layers.dropout import Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D, TokenDropout
from embdrop.layers.embedding import Embedding
from embdrop.layers.recurrent import GRU, LSTM, SimpleRNN


def convert(config: dict, weights: dict[str, list]) -> KerasModel:
    """A :class:`KerasModel` from a Keras config and its weights by file path (see :func:`read_keras`)."""
    layers = layer_configs(config)
    used: dict[str, int] = {}
    steps: dict[str, _Step] = {}
    width = None  # the feature size flowing between layers
    position = -1  # the layer's index in Keras' model.layers (input layers not counted)
    for k, layer in enumerate(layers):
        kind = layer.get("class_name")
        position += kind != "InputLayer"
        layer = {**layer, "picked": layers[k + 1].get("reads", 0) if k + 1 < len(layers) else 0}
        i = position
        if kind not in SUPPORTED:
            raise _unsupported(i, layer, "an unsupported layer type")
        base = _snake(kind)
        key = base if base not in used else f"{base}_{used[base] + 1}"
        used[base] = used.get(base, -1) + 1
        w = weights.get(f"layers/{key}", [])
        step, width = _convert_layer(i, layer, w, weights, f"layers/{key}", width)
        if step is not None:
            steps[key] = step
    return KerasModel(steps, config)


_MISSING = object()
SIZE_LIMIT = 2**31 - 1  # units, filters, input_dim...: what a tensor dimension takes (the weights bound the memory)


class _Layer:
    """One layer's config, read with checks: a missing or wrong field names the layer, the field and its value."""

    def __init__(self, i: int, layer: dict) -> None:
        self.i, self.kind, self.c = i, layer["class_name"], layer["config"]
        self.layer = layer

    def where(self) -> str:
        return f"layer {self.i} '{self.c.get('name', '?')}' ({self.kind})"

    def get(self, name: str, default=_MISSING):
        if name not in self.c or self.c[name] is None:
            if default is _MISSING:
                raise KerasImportError("model", f"a {self.kind} config with {name}", f"{self.where()} without it")
            return default
        return self.c[name]

    def wrong(self, name: str, expected: str) -> KerasImportError:
        return KerasImportError("model", f"{name} {expected}", f"{self.where()} with {name}={self.c.get(name)!r}")

    def size(self, name: str, default=_MISSING, *, single: bool = False) -> int:
        """A positive int (``single``: or a one-element list of one, as Keras writes kernel sizes)."""
        v = self.get(name, default)
        if single and isinstance(v, (list, tuple)) and len(v) == 1:
            v = v[0]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= SIZE_LIMIT:
            raise self.wrong(name, f"an int in [1, {SIZE_LIMIT}]")
        return v

    def rate(self, name: str, default=_MISSING, *, upper: float | None = 1.0) -> float:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise self.wrong(name, "a finite number >= 0" if upper is None else "a float in [0, 1)")
        if upper is not None and v >= upper:
            raise self.wrong(name, "a float in [0, 1)")
        return float(v)

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise self.wrong(name, "true or false")
        return v

    def weights(self, w: list, expected: list[tuple[str, tuple]]) -> list[Tensor]:
        """The layer's arrays as float32 tensors, each of the shape its config implies (None: any size), floating
        point and finite."""
        names = ", ".join(n for n, _ in expected)
        if len(w) != len(expected):
            raise KerasImportError("model", f"{len(expected)} weights ({names}), as its config implies",
                                   f"{self.where()} with {len(w)} in the weights file")  # fmt: skip
        out = []
        for (name, shape), a in zip(expected, w, strict=True):
            got = tuple(getattr(a, "shape", ()))
            if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got, strict=True)):
                shown = (
                    "("
                    + ", ".join("any" if s is None else str(s) for s in shape)
                    + ("," if len(shape) == 1 else "")
                    + ")"
                )
                raise KerasImportError("model", f"each weight of the shape its layer's config implies: {name} {shown}",
                                       f"{self.where()} {name} of shape {got}")  # fmt: skip
            if getattr(a, "dtype", None) is None or a.dtype.kind != "f":
                dtype = getattr(a, "dtype", type(a).__name__)
                raise KerasImportError("model", f"floating-point weights ({name})",
                                       f"{self.where()} {name} of dtype {dtype}")  # fmt: skip
            tensor = torch.from_numpy(a.astype("float32", copy=True))
            if not bool(torch.isfinite(tensor).all()):
                raise KerasImportError("model", f"finite weights ({name}: no nan or inf)",
                                       f"{self.where()} {name} with {int((~torch.isfinite(tensor)).sum())} "
                                       "non-finite values")  # fmt: skip
            out.append(tensor)
        return out

    def option(self, name: str, allowed: tuple) -> object:
        """A config value among ``allowed``; otherwise the layer is refused, naming the supported values."""
        if self.c.get(name) not in allowed:
            raise _unsupported(self.i, self.layer, f"{name}={self.c.get(name)!r} (supported: "
                               f"{', '.join(map(repr, allowed))})")  # fmt: skip
        return self.c.get(name)

    def activation(self, name: str = "activation") -> str:
        a = self.c.get(name, "linear")
        if not isinstance(a, str) or a not in ACTIVATIONS:
            raise _unsupported(self.i, self.layer, f"{name}={a!r} (supported: {', '.join(ACTIVATIONS)})")
        return a


# One converter per Keras layer class: (the layer's config, its weight arrays, every weight by path, its key in the
# weights file, the feature size flowing in) -> (the step, or None for none; the feature size flowing out).
Converted = tuple["_Step | None", "int | None"]


def _input(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    return None, None


def _embedding(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    V, E = L.size("input_dim"), L.size("output_dim")
    (table,) = L.weights(w, [("embeddings", (V, E))])  # checked before the layer is allocated
    emb = Embedding(V, E)
    with torch.no_grad():
        emb.weight.copy_(table)
    return _Embed(emb, L.flag("mask_zero")), E


def _gaussian_dropout(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    return _Step(GaussianDropout(L.rate("rate"))), width


def _gaussian_noise(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    return _Step(GaussianNoise(L.rate("stddev", upper=None))), width


def _spatial_dropout(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    return _Step(SpatialDropout1D(L.rate("rate"))), width


def _dropout(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    rate = L.rate("rate")
    shape = L.c.get("noise_shape")
    if shape is None:
        return _Step(Dropout(rate)), width
    supported = "(supported: None, (None, 1, C), (None, T, 1))"
    if not isinstance(shape, list):
        raise _unsupported(L.i, L.layer, f"noise_shape={shape!r} {supported}")
    if shape[1:] == [1, width] or (len(shape) == 3 and shape[1] == 1):
        return _Step(SpatialDropout1D(rate)), width  # one mask per sample, shared across T: (B, 1, C)
    if len(shape) == 3 and shape[2] == 1:
        return _Step(TokenDropout(rate)), width  # whole time steps: (B, T, 1)
    raise _unsupported(L.i, L.layer, f"noise_shape={shape} {supported}")


def _conv1d(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    L.option("data_format", ("channels_last", None))
    L.option("groups", (1, None))
    padding = L.option("padding", ("valid", "same", "causal"))
    filters, size = L.size("filters"), L.size("kernel_size", single=True)
    strides, dilation = L.size("strides", 1, single=True), L.size("dilation_rate", 1, single=True)
    bias = L.flag("use_bias", True)
    arrays = L.weights(w, [("kernel", (size, width, filters))] + [("bias", (filters,))] * bias)
    kernel = arrays[0]  # (K, C, filters)
    conv = Conv1D(kernel.shape[1], filters, size, padding=padding, strides=strides, dilation_rate=dilation, bias=bias)
    with torch.no_grad():
        conv.conv.weight.copy_(kernel.permute(2, 1, 0))  # (filters, C, K)
        if bias:
            conv.conv.bias.copy_(arrays[1])
    return _MaskDropping(conv, L.activation()), filters


def _pooling(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    L.option("data_format", ("channels_last", None))
    padding = L.option("padding", ("valid", "same"))
    size = L.size("pool_size", single=True)
    strides = L.size("strides", size, single=True)
    return _Pool("max" if L.kind == "MaxPooling1D" else "average", size, strides, padding), width


def _global_pooling(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    L.option("data_format", ("channels_last", None))
    return _GlobalPool("max" if L.kind == "GlobalMaxPooling1D" else "average", L.flag("keepdims")), width


def _flatten(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    return _Flatten(), None


def _dense(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    units, bias = L.size("units"), L.flag("use_bias", True)
    arrays = L.weights(w, [("kernel", (width, units))] + [("bias", (units,))] * bias)
    kernel = arrays[0]  # (in, units)
    dense = nn.Linear(kernel.shape[0], units, bias=bias)
    with torch.no_grad():
        dense.weight.copy_(kernel.T)
        if bias:
            dense.bias.copy_(arrays[1])
    return _Step(dense, L.activation()), units


def _activation(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    return _Step(None, L.activation()), width


def _recurrent(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    rnn = _rnn(L, [weights.get(f"{key}/cell", [])], width, bidirectional=False)
    pick = L.layer.get("picked", 0) if L.flag("return_state") else 0  # 1: the final h, 2: the final c (LSTM)
    step = _RecurrentStep(rnn, L.flag("return_sequences"), L.flag("go_backwards"), None, pick)
    return step, L.size("units")


def _bidirectional(L: _Layer, w: list, weights: dict, key: str, width: int | None) -> Converted:
    c = L.c
    inner = c.get("layer")
    if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
        raise L.wrong("layer", "a wrapped layer's config")
    if inner.get("class_name") not in ("SimpleRNN", "LSTM", "GRU"):
        raise _unsupported(L.i, L.layer, f"a wrapped {inner.get('class_name')} (supported: SimpleRNN, LSTM, GRU)")
    merge = L.option("merge_mode", ("concat", "sum", "ave", "mul"))
    back = c.get("backward_layer")
    same = ("units", "activation", "recurrent_activation", "use_bias", "dropout", "recurrent_dropout",
            "return_sequences", "reset_after")  # fmt: skip
    if back is not None and (not isinstance(back, dict) or not isinstance(back.get("config"), dict)
                             or any(back["config"].get(k) != inner["config"].get(k) for k in same)):  # fmt: skip
        raise _unsupported(L.i, L.layer, "a backward_layer that differs from the forward one")
    cells = [weights.get(f"{key}/forward_layer/cell", []), weights.get(f"{key}/backward_layer/cell", [])]
    wrapped = _Layer(L.i, {"class_name": inner["class_name"], "config": {"name": c.get("name"), **inner["config"]}})
    if wrapped.flag("return_state"):
        raise _unsupported(L.i, L.layer, "return_state=True in Bidirectional (supported: False)")
    rnn = _rnn(wrapped, cells, width, bidirectional=True, merge_mode=merge)
    step = _RecurrentStep(rnn, wrapped.flag("return_sequences"), False, merge)
    units = wrapped.size("units")
    return step, units * (2 if merge == "concat" else 1)


CONVERTERS = {
    "InputLayer": _input,
    "Embedding": _embedding,
    "Dropout": _dropout,
    "SpatialDropout1D": _spatial_dropout,
    "GaussianDropout": _gaussian_dropout,
    "GaussianNoise": _gaussian_noise,
    "Conv1D": _conv1d,
    "MaxPooling1D": _pooling,
    "AveragePooling1D": _pooling,
    "GlobalMaxPooling1D": _global_pooling,
    "GlobalAveragePooling1D": _global_pooling,
    "Flatten": _flatten,
    "Dense": _dense,
    "Activation": _activation,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "Bidirectional": _bidirectional,
}


def _convert_layer(i: int, layer: dict, w: list, weights: dict, key: str, width: int | None) -> Converted:
    """Layer ``i`` of the model (its class in :data:`SUPPORTED`, checked by the caller) by its class's converter."""
    return CONVERTERS[layer["class_name"]](_Layer(i, layer), w, weights, key, width)


def _rnn(L: _Layer, cells: list[list], width: int | None, bidirectional: bool,
         merge_mode: str = "concat") -> nn.Module:  # fmt: skip
    kind, c = L.kind, L.c
    checks = {"activation": "tanh", "recurrent_activation": "sigmoid", "stateful": False, "unroll": False,
              "use_bias": True}  # fmt: skip
    for k, v in checks.items():
        if c.get(k, v) != v:
            raise _unsupported(L.i, L.layer, f"{k}={c.get(k)!r} (supported: {v!r})")
    H = L.size("units")
    G = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    rates = {"dropout": L.rate("dropout", 0.0), "recurrent_dropout": L.rate("recurrent_dropout", 0.0)}
    reset_after = kind == "GRU" and L.flag("reset_after", True)
    bias_shape = (2, G * H) if reset_after else (G * H,)
    arrays = [L.weights(cell, [("kernel", (width, G * H)), ("recurrent_kernel", (H, G * H)), ("bias", bias_shape)])
              for cell in cells]  # fmt: skip
    C = arrays[0][0].shape[0]
    if len(arrays) == 2 and arrays[1][0].shape[0] != C:
        raise KerasImportError("model", f"both directions' kernels of {C} rows", f"{L.where()}: "
                               f"{arrays[1][0].shape[0]} in the backward layer")  # fmt: skip
    if kind == "SimpleRNN":
        rnn = SimpleRNN(C, H, **rates, bidirectional=bidirectional, merge_mode=merge_mode)
    elif kind == "LSTM":
        rnn = LSTM(C, H, **rates, bidirectional=bidirectional, merge_mode=merge_mode)
    else:
        rnn = GRU(C, H, **rates, bidirectional=bidirectional, merge_mode=merge_mode, reset_after=reset_after)
    for d, (kernel, recurrent, bias) in enumerate(arrays):
        s = "_reverse" if d == 1 else ""
        w_ih, w_hh = kernel.T, recurrent.T  # (G*H, C), (G*H, H)
        if kind != "GRU":  # one bias; LSTM's gate order i, f, c, o in both
            b_ih, b_hh = bias, torch.zeros_like(bias)
        else:  # Keras z, r, h -> torch r, z, n
            order = torch.cat([torch.arange(H, 2 * H), torch.arange(0, H), torch.arange(2 * H, 3 * H)])
            w_ih, w_hh = w_ih[order], w_hh[order]
            if reset_after:  # (2, 3H): the input and the recurrent bias
                b_ih, b_hh = bias[0][order], bias[1][order]
            else:  # (3H,): one bias, on the input side
                b_ih, b_hh = bias[order], torch.zeros(3 * H)
        with torch.no_grad():
            for name, value in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih), ("bias_hh", b_hh)):
                getattr(rnn, f"{name}_l0{s}").copy_(value)
    return rnn


# ----------------------------------------------------------------------------------------------- convert
def extra_biases(model: KerasModel) -> int:
    """The parameters the converted model has and Keras' does not: a recurrent layer's ``bias_hh``, which torch
    adds to ``bias_ih`` and which stays zero where Keras has one bias (LSTM, SimpleRNN, GRU with
    ``reset_after=False``)."""
    extra = 0
    for step in model.steps.values():
        rnn = step.module
        if isinstance(rnn, (LSTM, SimpleRNN)) or (isinstance(rnn, GRU) and not rnn.reset_after):
            extra += sum(p.numel() for n, p in rnn.named_parameters() if n.startswith("bias_hh"))
    return extra

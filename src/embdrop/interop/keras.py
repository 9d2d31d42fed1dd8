"""Keras 3 text models in PyTorch: :func:`from_keras` reads a ``.keras`` file (``config.json`` and
``model.weights.h5``, with h5py: neither TensorFlow nor Keras is imported) into an :class:`nn.Module` whose outputs
equal Keras' ``model.predict`` and whose dropout layers have Keras' semantics.

Supported: ``Sequential`` models and functional models whose layers form one chain, of the layers in
:data:`SUPPORTED`. The padding mask of ``Embedding(mask_zero=True)`` flows as in Keras: Dropout, SpatialDropout1D,
Dense, Activation and the recurrent layers pass it on (an LSTM or GRU skips padded steps), GlobalAveragePooling1D
averages the real steps only, and Conv1D, the poolings and Flatten drop it (Keras warns that they "destroy the mask").
The recurrent layers need each row's padding at its start or its end (``pad_sequences``' pre- or post-padding).

Mapping of the weights (Keras -> torch): Dense kernel (in, out) -> ``weight`` (out, in); Conv1D kernel
(K, C, filters) -> (filters, C, K); LSTM kernel (C, 4H) in gate order i, f, c, o -> ``weight_ih`` (4H, C), the one
bias -> ``bias_ih`` (``bias_hh`` zero); GRU gate order z, r, h -> torch's r, z, n, its (2, 3H) bias ->
``bias_ih``, ``bias_hh`` (``reset_after=False``: one (3H,) bias -> ``bias_ih``, and embdrop's GRU(reset_after=False)).

Training mode: Dropout(rate, noise_shape), SpatialDropout1D and LSTM/GRU(dropout, recurrent_dropout) become
embdrop's layers of the same rates and mask shapes (see their ``Mask:`` lines); a layer's ``seed`` is not used
(embdrop draws from torch's generator).
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embdrop import _checks, _extras
from embdrop.layers.conv import Conv1D, GlobalAveragePool1D, same_padding
from embdrop.layers.dropout import Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D, TokenDropout
from embdrop.layers.embedding import Embedding
from embdrop.layers.recurrent import GRU, LSTM, SimpleRNN, merge

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


class _Recurrent(_Step):
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


# ----------------------------------------------------------------------------------------------- reading
def _snake(name: str) -> str:
    """Keras' file key of a layer class: ``GlobalAveragePooling1D`` -> ``global_average_pooling1d``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_configs(config: dict) -> list[dict]:
    """The layer configs in order: a Sequential's, or a functional model's when they form one chain."""
    kind = config.get("class_name")
    inner = config.get("config", {})
    if kind == "Sequential":
        return list(inner.get("layers", []))
    if kind in ("Functional", "Model"):
        # Keras 3 writes the padding mask of Embedding(mask_zero=True) as a NotEqual(ids, 0) node beside the chain,
        # read by the layers after it as their `mask` argument: the mask flows here as it does in a Sequential.
        layers = [dict(layer) for layer in inner.get("layers", []) if layer.get("class_name") != "NotEqual"]
        previous = None
        for i, layer in enumerate(layers):
            args = [node.get("args", []) for node in layer.get("inbound_nodes", [])]
            history = re.findall(r'"keras_history": \["([^"]+)", \d+, (\d+)\]', json.dumps(args))
            inbound = [name for name, _ in history]
            layer["reads"] = int(history[0][1]) if history else 0  # which output of the layer before: 1 = h, ...
            if (i == 0 and inbound) or (i > 0 and inbound != [previous]):
                got = f"layer {i} '{layer['config'].get('name')}' reads {inbound or 'nothing'}"
                raise KerasImportError("model", "a functional model whose layers form one chain", got)
            previous = layer["config"].get("name")
        outputs = inner.get("output_layers", [])
        outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs  # one output: a flat triple
        if layers and outputs and (len(outputs) != 1 or outputs[0][0] != previous or outputs[0][2] != 0):
            raise KerasImportError("model", "a functional model with one output, its last layer's first",
                                   json.dumps(outputs))  # fmt: skip
        return layers
    raise KerasImportError("model", "a Sequential or a functional Keras model", repr(kind))


# Bounds checked before anything is read or allocated: a Keras config is kilobytes (a megabyte for a very deep
# model), the weights of the text models this converter takes fit in memory, and no such model has 10,000 layers.
CONFIG_LIMIT = 16 << 20
WEIGHTS_LIMIT = 16 << 30
LAYER_LIMIT = 10_000
DEFLATE_RATIO = 1032  # the most deflate can expand: a member said to expand further is damaged


def _archive_error(path: Path, what: str) -> _checks.UsageError:
    return _checks.invalid("path", "a Keras 3 .keras file (a zip with config.json and model.weights.h5)",
                           f"{str(path)!r} ({what})")  # fmt: skip


def read_json_bounded(path: Path, argument: str, expected: str, limit: int = CONFIG_LIMIT):
    """The JSON in ``path``, refused (the error template) when it is missing, larger than ``limit`` bytes, not
    UTF-8 or not JSON; nothing larger than ``limit`` is read."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit or not path.is_file():
                raise _checks.invalid(argument, f"{expected}, a regular file of at most {limit:,} bytes",
                                      f"{str(path)!r} (larger)")  # fmt: skip
            raw = f.read()
    except OSError as e:
        raise _checks.invalid(argument, expected, f"{str(path)!r} ({e.strerror or e})") from None
    if len(raw) > limit:
        raise _checks.invalid(argument, f"{expected}, at most {limit:,} bytes", f"{str(path)!r} (larger)")
    return _parse_json(raw, path, argument, expected)


def _parse_json(raw: bytes, path: Path, argument: str, expected: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _checks.invalid(argument, expected, f"{str(path)!r} ({type(e).__name__}: {e})") from None


def read_keras(path: str | Path) -> tuple[dict, dict[str, list]]:
    """(config.json, {weights path: [arrays]}) of a ``.keras`` file; the arrays in the file's order.

    Every member's size is checked before it is read (:data:`CONFIG_LIMIT`, :data:`WEIGHTS_LIMIT`), and the
    weights' datasets before they are: a damaged or hostile file is refused with the error template.
    """
    path = Path(path)
    if not path.is_file():
        raise _checks.invalid("path", "an existing .keras file", repr(str(path)))
    _extras.need("h5py")
    import io

    import h5py

    try:
        with zipfile.ZipFile(path) as z:
            members = {i.filename: i for i in z.infolist()}
            for name, limit in (("config.json", CONFIG_LIMIT), ("model.weights.h5", WEIGHTS_LIMIT)):
                if name not in members:
                    raise _archive_error(path, f"no {name}")
                info = members[name]
                if info.file_size > limit:
                    raise _archive_error(path, f"{name} of {info.file_size:,} bytes, over {limit:,}")
                if info.file_size > DEFLATE_RATIO * info.compress_size + (1 << 16):  # more than deflate can give
                    raise _archive_error(path, f"{name} said to expand {info.compress_size:,} bytes to "
                                         f"{info.file_size:,}")  # fmt: skip
            raw = _read_member(z, members["config.json"])
            data = _read_member(z, members["model.weights.h5"])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, EOFError, OSError,
            RuntimeError) as e:  # fmt: skip
        raise _archive_error(path, f"{type(e).__name__}: {e}") from None
    config = _parse_json(raw, path, "path", "a Keras 3 .keras file whose config.json is JSON")
    check_config(config, f"{str(path)!r} config.json")
    weights: dict[str, list] = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            groups: list[tuple[str, h5py.Group]] = []
            f.visititems(lambda name, obj: groups.append((name, obj)) if isinstance(obj, h5py.Group)
                         and name.endswith("vars") and len(obj) else None)  # fmt: skip
            total = 0
            for name, group in groups:
                keys = list(group)
                if not all(k.isdigit() for k in keys) or not all(isinstance(group[k], h5py.Dataset) for k in keys):
                    raise _archive_error(path, f"weights group {name!r} holds {keys[:5]}, not datasets 0, 1, ...")
                for k in keys:
                    ds = group[k]
                    if ds.dtype.kind not in "fiub" or ds.dtype.itemsize > 8:  # strings, compounds: not weights
                        raise _archive_error(path, f"weights dataset {name}/{k} of dtype {ds.dtype}, not numbers")
                    # what a dataset can hold: its bytes in the file, or as much as a compression filter gives
                    total += ds.size * ds.dtype.itemsize // (1 if ds.compression is None else DEFLATE_RATIO)
                if total > min(WEIGHTS_LIMIT, len(data)):
                    raise _archive_error(path, f"weights datasets of more bytes than model.weights.h5 holds "
                                         f"({len(data):,})")  # fmt: skip
                weights[name[: -len("/vars")] if name != "vars" else ""] = [
                    group[k][()] for k in sorted(keys, key=int)
                ]  # fmt: skip
    except _checks.UsageError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:  # h5py's errors for a file that is not HDF5 or is cut
        raise _archive_error(path, f"model.weights.h5 is not a readable HDF5 file: {type(e).__name__}: {e}") from None
    return config, weights


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, read a mebibyte at a time up to its declared size: ``ZipFile.read`` asks the file for up to
    2 GiB at once when a damaged header says so, and the buffer is allocated before a byte is read."""
    parts, total = [], 0
    with z.open(info) as f:
        while True:
            part = f.read(1 << 20)
            if not part:
                break
            total += len(part)
            if total > info.file_size:
                raise zipfile.BadZipFile(f"{info.filename} holds more than its declared {info.file_size:,} bytes")
            parts.append(part)
    return b"".join(parts)


def check_config(config: object, where: str) -> None:
    """A Keras model config: a JSON object with ``class_name`` and a ``config`` object whose ``layers`` is a list of
    at most :data:`LAYER_LIMIT` layer objects, each with a ``class_name`` and a ``config`` object."""
    expected = "a Keras model config (an object with class_name and config.layers)"
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise KerasImportError("model", expected, f"{where}: {type(config).__name__}")
    layers = config["config"].get("layers")
    if not isinstance(layers, list):
        raise KerasImportError("model", expected, f"{where}: config.layers is {type(layers).__name__}")
    if len(layers) > LAYER_LIMIT:
        raise KerasImportError("model", f"at most {LAYER_LIMIT:,} layers", f"{where}: {len(layers):,} layers")
    for i, layer in enumerate(layers):
        if (not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str)
                or not isinstance(layer.get("config"), dict)):  # fmt: skip
            raise KerasImportError("model", "layers that are objects with class_name and config",
                                   f"{where}: layer {i} is {json.dumps(layer)[:80]}")  # fmt: skip


def from_keras(path: str | Path) -> KerasModel:
    """The Keras model in ``path`` (a ``.keras`` file, or a folder written by ``embdrop convert``) as a torch module.

    Example:
        >>> model = embdrop.from_keras("model.keras")  # doctest: +SKIP
        >>> model.eval()(torch.tensor([[0, 0, 12, 7, 3]]))  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        return _load_converted(path)
    config, weights = read_keras(path)
    return convert(config, weights)


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


def _convert_layer(i: int, layer: dict, w: list, weights: dict, key: str, width: int | None):
    L = _Layer(i, layer)
    kind, c = L.kind, L.c

    def option(name, allowed):
        if c.get(name) not in allowed:
            raise _unsupported(i, layer, f"{name}={c.get(name)!r} (supported: {', '.join(map(repr, allowed))})")
        return c.get(name)

    def activation(name="activation"):
        a = c.get(name, "linear")
        if not isinstance(a, str) or a not in ACTIVATIONS:
            raise _unsupported(i, layer, f"{name}={a!r} (supported: {', '.join(ACTIVATIONS)})")
        return a

    if kind == "InputLayer":
        return None, None
    if kind == "Embedding":
        V, E = L.size("input_dim"), L.size("output_dim")
        (table,) = L.weights(w, [("embeddings", (V, E))])  # checked before the layer is allocated
        emb = Embedding(V, E)
        with torch.no_grad():
            emb.weight.copy_(table)
        return _Embed(emb, L.flag("mask_zero")), E
    if kind == "GaussianDropout":
        return _Step(GaussianDropout(L.rate("rate"))), width
    if kind == "GaussianNoise":
        return _Step(GaussianNoise(L.rate("stddev", upper=None))), width
    if kind in ("Dropout", "SpatialDropout1D"):
        rate = L.rate("rate")
        if kind == "SpatialDropout1D":
            return _Step(SpatialDropout1D(rate)), width
        shape = c.get("noise_shape")
        if shape is None:
            return _Step(Dropout(rate)), width
        if not isinstance(shape, list):
            raise _unsupported(i, layer, f"noise_shape={shape!r} (supported: None, (None, 1, C), (None, T, 1))")
        if shape[1:] == [1, width] or (len(shape) == 3 and shape[1] == 1):
            return _Step(SpatialDropout1D(rate)), width  # one mask per sample, shared across T: (B, 1, C)
        if len(shape) == 3 and shape[2] == 1:
            return _Step(TokenDropout(rate)), width  # whole time steps: (B, T, 1)
        raise _unsupported(i, layer, f"noise_shape={shape} (supported: None, (None, 1, C), (None, T, 1))")
    if kind == "Conv1D":
        option("data_format", ("channels_last", None))
        option("groups", (1, None))
        padding = option("padding", ("valid", "same", "causal"))
        filters, size = L.size("filters"), L.size("kernel_size", single=True)
        strides, dilation = L.size("strides", 1, single=True), L.size("dilation_rate", 1, single=True)
        bias = L.flag("use_bias", True)
        arrays = L.weights(w, [("kernel", (size, width, filters))] + [("bias", (filters,))] * bias)
        kernel = arrays[0]  # (K, C, filters)
        conv = Conv1D(kernel.shape[1], filters, size, padding=padding, strides=strides, dilation_rate=dilation,
                      bias=bias)  # fmt: skip
        with torch.no_grad():
            conv.conv.weight.copy_(kernel.permute(2, 1, 0))  # (filters, C, K)
            if bias:
                conv.conv.bias.copy_(arrays[1])
        return _MaskDropping(conv, activation()), filters
    if kind in ("MaxPooling1D", "AveragePooling1D"):
        option("data_format", ("channels_last", None))
        padding = option("padding", ("valid", "same"))
        size = L.size("pool_size", single=True)
        strides = L.size("strides", size, single=True)
        return _Pool("max" if kind == "MaxPooling1D" else "average", size, strides, padding), width
    if kind in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
        option("data_format", ("channels_last", None))
        return _GlobalPool("max" if kind == "GlobalMaxPooling1D" else "average", L.flag("keepdims")), width
    if kind == "Flatten":
        return _Flatten(), None
    if kind == "Dense":
        units, bias = L.size("units"), L.flag("use_bias", True)
        arrays = L.weights(w, [("kernel", (width, units))] + [("bias", (units,))] * bias)
        kernel = arrays[0]  # (in, units)
        dense = nn.Linear(kernel.shape[0], units, bias=bias)
        with torch.no_grad():
            dense.weight.copy_(kernel.T)
            if bias:
                dense.bias.copy_(arrays[1])
        return _Step(dense, activation()), units
    if kind == "Activation":
        return _Step(None, activation()), width
    if kind in ("SimpleRNN", "LSTM", "GRU"):
        rnn = _rnn(L, [weights.get(f"{key}/cell", [])], width, bidirectional=False)
        pick = layer.get("picked", 0) if L.flag("return_state") else 0  # 1: the final h, 2: the final c (LSTM)
        step = _Recurrent(rnn, L.flag("return_sequences"), L.flag("go_backwards"), None, pick)
        return step, L.size("units")
    if kind == "Bidirectional":
        inner = c.get("layer")
        if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
            raise L.wrong("layer", "a wrapped layer's config")
        if inner.get("class_name") not in ("SimpleRNN", "LSTM", "GRU"):
            raise _unsupported(i, layer, f"a wrapped {inner.get('class_name')} (supported: SimpleRNN, LSTM, GRU)")
        merge = option("merge_mode", ("concat", "sum", "ave", "mul"))
        back = c.get("backward_layer")
        same = ("units", "activation", "recurrent_activation", "use_bias", "dropout", "recurrent_dropout",
                "return_sequences", "reset_after")  # fmt: skip
        if back is not None and (not isinstance(back, dict) or not isinstance(back.get("config"), dict)
                                 or any(back["config"].get(k) != inner["config"].get(k) for k in same)):  # fmt: skip
            raise _unsupported(i, layer, "a backward_layer that differs from the forward one")
        cells = [weights.get(f"{key}/forward_layer/cell", []), weights.get(f"{key}/backward_layer/cell", [])]
        wrapped = _Layer(i, {"class_name": inner["class_name"], "config": {"name": c.get("name"), **inner["config"]}})
        if wrapped.flag("return_state"):
            raise _unsupported(i, layer, "return_state=True in Bidirectional (supported: False)")
        rnn = _rnn(wrapped, cells, width, bidirectional=True, merge_mode=merge)
        step = _Recurrent(rnn, wrapped.flag("return_sequences"), False, merge)
        units = wrapped.size("units")
        return step, units * (2 if merge == "concat" else 1)
    raise _unsupported(i, layer, "an unsupported layer type")  # pragma: no cover (SUPPORTED is checked first)


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


def save_converted(model: KerasModel, out: str | Path) -> Path:
    """Write ``model`` to the folder ``out``: ``model.safetensors`` (the torch weights) and ``keras_config.json``;
    :func:`from_keras` reads the folder back without h5py. Each file is written atomically."""
    _extras.need("safetensors")
    from safetensors.torch import save_file

    from embdrop._io import atomic_write, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda tmp: save_file(weights, tmp, metadata={"format": "pt"}))
    write_json(out / "keras_config.json", model.keras_config, indent=1)
    return out


def _load_converted(folder: Path) -> KerasModel:
    _extras.need("safetensors")
    from safetensors.torch import load_file

    config_path, weights_path = folder / "keras_config.json", folder / "model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise _checks.invalid("path", "a .keras file or a folder written by embdrop convert (keras_config.json, "
                              "model.safetensors)", repr(str(folder)))  # fmt: skip
    config = read_json_bounded(config_path, "path", "a folder written by embdrop convert (its keras_config.json)")
    check_config(config, f"{str(config_path)!r}")
    try:
        tensors = load_file(weights_path)
    except Exception as e:  # safetensors' own errors for a cut or foreign file
        raise _checks.invalid("path", "a folder written by embdrop convert (a readable model.safetensors)",
                              f"{str(weights_path)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
    model = _skeleton(config, tensors)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:  # tensors the config does not have, or lacks
        raise _checks.invalid("path", "a model.safetensors written with its keras_config.json",
                              f"{str(weights_path)!r} ({str(e).splitlines()[0]})") from None  # fmt: skip
    return model


def _skeleton(config: dict, tensors: dict[str, Tensor]) -> KerasModel:
    """The module of ``config`` with weights of the right shapes (the values come from ``tensors`` afterwards)."""
    # Rebuild Keras-shaped placeholder weights from the torch tensors' shapes, then convert as from a file.
    weights: dict[str, list] = {}
    layers = layer_configs(config)
    used: dict[str, int] = {}
    for layer in layers:
        kind = layer["class_name"]
        base = _snake(kind)
        key = base if base not in used else f"{base}_{used[base] + 1}"
        used[base] = used.get(base, -1) + 1
        prefix = f"steps.{key}.module."

        def get(n, prefix=prefix, key=key):
            if prefix + n not in tensors:
                raise _checks.invalid("path", "a model.safetensors written with its keras_config.json",
                                      f"no {prefix + n} for layer {key}")  # fmt: skip
            return tensors[prefix + n].numpy()

        if kind == "Embedding":
            weights[f"layers/{key}"] = [get("weight")]
        elif kind == "Dense":
            weights[f"layers/{key}"] = [get("weight").T] + ([get("bias")] if prefix + "bias" in tensors else [])
        elif kind == "Conv1D":
            b = [get("conv.bias")] if prefix + "conv.bias" in tensors else []
            weights[f"layers/{key}"] = [get("conv.weight").transpose(2, 1, 0)] + b
        elif kind in ("SimpleRNN", "LSTM", "GRU", "Bidirectional"):
            cells = ["cell"] if kind != "Bidirectional" else ["forward_layer/cell", "backward_layer/cell"]
            wrapped = layer["config"].get("layer") if kind == "Bidirectional" else None
            inner = wrapped.get("class_name") if isinstance(wrapped, dict) else kind
            for d, cell in enumerate(cells):
                s = "_reverse" if d == 1 else ""
                kernel, recurrent = get(f"weight_ih_l0{s}").T, get(f"weight_hh_l0{s}").T
                bias = get(f"bias_ih_l0{s}")
                if inner == "GRU":
                    import numpy as np

                    rnn_config = layer["config"]["layer"]["config"] if kind == "Bidirectional" else layer["config"]
                    if not isinstance(rnn_config, dict):
                        break
                    if rnn_config.get("reset_after", True):
                        bias = np.stack([bias, get(f"bias_hh_l0{s}")])
                    H = recurrent.shape[0]
                    back = np.concatenate([np.arange(H, 2 * H), np.arange(0, H), np.arange(2 * H, 3 * H)])
                    kernel, recurrent, bias = kernel[:, back], recurrent[:, back], bias[..., back]
                weights[f"layers/{key}/{cell}"] = [kernel, recurrent, bias]
    return convert(config, weights)


# ----------------------------------------------------------------------------------------------- texts
VOCAB_LIMIT = 1 << 30  # bytes of a vocabulary file


def read_vocabulary(path: str | Path, argument: str = "--vocab") -> list[str]:
    """A Keras ``TextVectorization`` vocabulary file (one token per line, as ``get_vocabulary()`` lists them: the
    padding token "" first, then "[UNK]"), as a list; index i is id i."""
    path = Path(path)
    try:
        if path.stat().st_size > VOCAB_LIMIT:
            raise _checks.invalid(argument, f"a vocabulary file of at most {VOCAB_LIMIT:,} bytes", repr(str(path)))
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise _checks.invalid(argument, "a UTF-8 file of one token per line", f"{str(path)!r} ({e})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if len(lines) < 2 or lines[1] != "[UNK]":
        raise _checks.invalid(argument, "TextVectorization's vocabulary: '' (padding) on line 1, '[UNK]' on line 2",
                              f"{str(path)!r} (first lines {lines[:2]})")  # fmt: skip
    return lines


def encode_texts(texts: list[str], vocabulary: list[str], maxlen: int, padding: str) -> Tensor:
    """(B, maxlen) ids as Keras' TextVectorization makes them (lower case, punctuation deleted, whitespace split;
    unknown words 1). ``padding="post"``: zeros and cuts at the end, as ``TextVectorization(output_sequence_length=
    maxlen)``; ``"pre"``: at the start, as ``pad_sequences``' defaults."""
    from embdrop.data import Tokenizer, pad_sequences

    index = {w: i for i, w in enumerate(vocabulary) if i >= 2}
    tok = Tokenizer(punctuation="strip")
    return pad_sequences([[index.get(w, 1) for w in tok(t)] for t in texts], maxlen, padding=padding,
                         truncating=padding)  # fmt: skip


def read_text_settings(folder: Path) -> tuple[dict, list[str]]:
    """(text.json, the vocabulary) of a folder converted with ``--vocab``: what turns texts into its ids."""
    meta_path = folder / "text.json"
    if not meta_path.is_file():
        raise _checks.invalid("RUN_DIR", "a folder converted with --vocab (embdrop convert MODEL OUT --vocab FILE)",
                              repr(str(folder)))  # fmt: skip
    meta = read_json_bounded(meta_path, "RUN_DIR", "a folder converted with --vocab (its text.json)")
    check_text_meta(meta, f"{str(meta_path)!r}")
    return meta, read_vocabulary(folder / "vocab.txt", "RUN_DIR")


def predict_converted(folder: str | Path, texts: list[str], *, mc: int = 0, seed: int = 0):
    """(output names, (N, K) outputs) of a converted model on ``texts``, with the vocabulary it was converted
    with (``embdrop convert --vocab``). With ``mc`` > 0: (names, :class:`~embdrop.layers.MCPrediction`) over ``mc``
    passes with the dropout layers on (MC dropout), reproducible from ``seed``; its predictive entropy and mutual
    information are computed where the last layer is a sigmoid or a softmax (the outputs are probabilities)."""
    mc = _checks.mc_samples("--mc", mc)
    seed = _checks.seed("--seed", seed)
    folder = Path(folder)
    meta, vocabulary = read_text_settings(folder)
    meta_path = folder / "text.json"
    ids = encode_texts(texts, vocabulary, meta["maxlen"], meta["padding"])
    for text, row in zip(texts, ids, strict=True):
        if not bool((row != 0).any()):  # no word left after TextVectorization's standardisation
            raise _checks.invalid("TEXT", "a text with at least one word", repr(text[:60]))
    try:
        model = from_keras(folder).eval()
    except _checks.UsageError as e:  # named by what the user typed: the folder
        raise _checks.invalid("RUN_DIR", e.expected, f"{str(folder)!r}: {e.received}") from None
    with torch.no_grad():
        out = model(ids)
    out = out.reshape(len(texts), -1)  # (N, K)
    names = meta.get("outputs") or [str(k) for k in range(out.shape[1])]
    if len(names) != out.shape[1]:
        raise _checks.invalid("RUN_DIR", f"a text.json naming the model's {out.shape[1]} outputs",
                              f"{str(meta_path)!r} names {len(names)}: {names}")  # fmt: skip
    if mc == 0:
        return names, out
    from embdrop.layers.mc import mc_predict

    last = [s.activation for s in model.steps.values() if s.module is not None or s.activation != "linear"][-1]
    probs = "binary" if last == "sigmoid" and out.shape[1] == 1 else "categorical" if last == "softmax" else None
    flat = _Flat(model)
    return names, mc_predict(flat, ids, samples=mc, probs=probs, generator=torch.Generator().manual_seed(seed))


class _Flat(nn.Module):
    """The converted model with its outputs as (N, K)."""

    def __init__(self, model: KerasModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        return self.model(ids).reshape(ids.shape[0], -1)


MAXLEN_LIMIT = 1 << 20  # ids per text: a (texts, maxlen) tensor is allocated for them


def check_text_meta(meta: object, where: str) -> None:
    """text.json of a converted folder: ``maxlen`` (an int in [1, 2**20]), ``padding`` ("pre" or "post") and
    ``outputs`` (None or a list of names)."""
    expected = "a text.json with maxlen (ids per text), padding ('pre' or 'post') and outputs (names or null)"
    if not isinstance(meta, dict):
        raise _checks.invalid("RUN_DIR", expected, f"{where}: {type(meta).__name__}")
    maxlen = meta.get("maxlen")
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or not 1 <= maxlen <= MAXLEN_LIMIT:
        raise _checks.invalid("RUN_DIR", f"{expected}; maxlen in [1, {MAXLEN_LIMIT:,}]", f"{where}: maxlen={maxlen!r}")
    if meta.get("padding") not in ("pre", "post"):
        raise _checks.invalid("RUN_DIR", expected, f"{where}: padding={meta.get('padding')!r}")
    names = meta.get("outputs")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise _checks.invalid("RUN_DIR", expected, f"{where}: outputs={names!r}")

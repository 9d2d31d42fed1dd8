"""Reading a ``.keras`` file: its members bounded before they are read, its config checked, its layers in order
(see :mod:`embdrop.interop.keras`)."""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from pathlib import Path

from embdrop import _checks, _extras
from embdrop.interop.keras_model import KerasImportError


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

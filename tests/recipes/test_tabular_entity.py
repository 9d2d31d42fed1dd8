"""``tabular-entity`` on tables the tests write: binary, multi-class and regression targets, and bad tables."""

import json
import warnings

import numpy as np
import pytest
from tests.recipes.test_train import quiet

from embdrop import recipes
from embdrop.cli import main

FAST = ["train.epochs=6", "train.batch_size=64", "model.hidden=16", "train.patience=None"]


def table(path, n=1500, seed=0, target="binary"):
    """A city (30 levels) and a weekday drive the target, a numeric column adds to it, a noise column does not."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    city = rng.integers(0, 30, n)
    day = rng.integers(0, 7, n)
    x = rng.normal(size=n)
    effect = np.sin(city) * 2 + (day >= 5) * 1.5 + x
    if target == "binary":
        y = np.where(effect + rng.normal(scale=0.5, size=n) > 0.5, "yes", "no")
    elif target == "multiclass":
        y = np.digitize(effect, [-1.0, 0.5, 2.0])  # 4 classes as ints
    else:
        y = effect * 10 + 100 + rng.normal(scale=1.0, size=n)
    df = pd.DataFrame({"city": [f"c{c}" for c in city], "day": [f"d{d}" for d in day], "x": x,
                       "noise": rng.normal(size=n), "target": y})  # fmt: skip
    df.to_csv(path, index=False)
    return path


@pytest.mark.slow  # full training runs
@pytest.mark.parametrize("kind, metric", [("binary", "auc"), ("multiclass", "accuracy")])
def test_classes_learn_from_categories_and_numbers(tmp_path, kind, metric):
    import pandas as pd

    path = table(tmp_path / "t.csv", target=kind)
    s = recipes.train("tabular-entity", FAST + [f"data.train={path}", "data.label=target", "train.epochs=12"],
                      tmp_path / "run", console=quiet())  # fmt: skip
    majority = pd.read_csv(path)["target"].value_counts(normalize=True).max()
    assert s.test[metric] > (0.85 if kind == "binary" else majority + 0.15)
    classes = json.loads((tmp_path / "run" / "classes.json").read_text())
    assert classes == (["no", "yes"] if kind == "binary" else ["0", "1", "2", "3"])
    assert json.loads((tmp_path / "run" / "categories.json").read_text())["columns"] == ["city", "day"]


@pytest.mark.slow  # full training runs
def test_regression_reports_rmse_in_the_targets_units_and_beats_the_mean(tmp_path):
    path = table(tmp_path / "t.csv", target="regression")
    s = recipes.train("tabular-entity", FAST + [f"data.train={path}", "data.label=target", "train.epochs=15"],
                      tmp_path / "run", console=quiet())  # fmt: skip
    assert s.test["rmse"] < 0.5 * s.test["mean_baseline_rmse"]
    assert 5 < s.test["mean_baseline_rmse"] < 30  # the target's own units (its std is about 15), not standardised


@pytest.mark.slow  # two full training runs
def test_onehot_and_hash_kinds_and_named_categorical_columns(tmp_path):
    path = table(tmp_path / "t.csv")
    for kind in ("onehot", "hash"):
        sets = [f"data.train={path}", "data.label=target", f"model.kind={kind}", "data.categorical=city,day"]
        s = recipes.train("tabular-entity", FAST + sets, tmp_path / kind, console=quiet())
        assert s.test["auc"] > 0.8


@pytest.mark.parametrize(
    "sets, message",
    [
        (["data.label=missing"], "argument 'data.label': expected a column of"),
        (["data.label=target", "data.categorical=city,nope"], "argument 'data.categorical': expected columns of"),
        (["data.label=city", "data.target=regression"], "expected a numeric target column for a regression"),
        (["data.label=target", "data.target=sideways"], "argument 'data.target': expected one of 'auto'"),
        (["data.label=target", "model.kind=tree"], "argument 'model.kind'"),
    ],
)
def test_bad_tables_and_fields_are_one_line(tmp_path, capsys, sets, message):
    path = table(tmp_path / "t.csv", n=200)
    out = tmp_path / "run"
    assert main(["train", "tabular-entity", "--data", str(path), *[f"--set={s}" for s in sets], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() or not any(p.name != ".lock" for p in out.iterdir())


def test_a_test_file_with_an_unseen_class_or_an_empty_target(tmp_path, capsys):
    import pandas as pd

    train = table(tmp_path / "train.csv", n=200)
    df = pd.read_csv(train)
    bad = df.head(5).assign(target=["yes", "no", "maybe", "yes", "no"])
    bad.to_csv(tmp_path / "test.csv", index=False)
    assert main(["train", "tabular-entity", "--data", str(train), "--test", str(tmp_path / "test.csv"),
                 "--set", "data.label=target", "--out", str(tmp_path / "r1")]) == 2  # fmt: skip
    assert "argument '--test': expected targets that occur in the training file" in capsys.readouterr().err
    df.loc[3, "target"] = None
    df.to_csv(tmp_path / "holes.csv", index=False)
    assert main(["train", "tabular-entity", "--data", str(tmp_path / "holes.csv"), "--set", "data.label=target",
                 "--out", str(tmp_path / "r2")]) == 2  # fmt: skip
    assert "line 5: empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "where, column, value, target, message",
    [
        ("data", "x", "inf", "binary", "argument '--data': expected finite numbers in the numeric column 'x' (no inf)"),
        ("data", "x", "-inf", "binary", "line 8: -inf"),
        ("valid", "noise", "hello", "binary", "argument '--valid': expected numbers in the numeric column 'noise'"),
        ("test", "x", "1e999", "binary", "argument '--test': expected finite numbers in the numeric column 'x'"),
        ("data", "target", "1e308", "regression", "argument 'data.label': expected a regression target whose mean"),
        ("data", "x", "1e308", "binary", "argument '--data': expected numeric columns whose spread is finite"),
        ("data", "target", "inf", "regression", "line 8: inf"),
    ],
)
def test_numbers_that_are_not_finite_or_not_numbers_are_refused_with_their_line(
    tmp_path, capsys, where, column, value, target, message
):
    import pandas as pd

    train = table(tmp_path / "train.csv", n=200, target=target)
    files = {"data": train}
    if where != "data":
        files[where] = table(tmp_path / f"{where}.csv", n=50, seed=1, target=target)
    df = pd.read_csv(files[where]).astype({column: object})
    for row in (6, 9, 11) if value == "1e308" else (6,):  # line 8 of the file is row 6
        df.loc[row, column] = value
    df.to_csv(files[where], index=False)
    out = tmp_path / "run"
    args = [x for k, p in files.items() for x in (f"--{k}", str(p))]
    with warnings.catch_warnings(record=True) as caught:  # the one line only: no numpy overflow warning before it
        warnings.simplefilter("always")
        assert main(["train", "tabular-entity", *args, "--set", "data.label=target", "--out", str(out)]) == 2
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_test_metrics_that_are_not_finite_are_never_reported(tmp_path, monkeypatch, capsys):
    from embdrop.recipes import tabular_entity

    real = tabular_entity.OwnTable.evaluate

    def nan_on_test(self, model, split, **kw):
        out = real(self, model, split, **kw)
        return {k: float("nan") for k in out} if split == "test" else out

    monkeypatch.setattr(tabular_entity.OwnTable, "evaluate", nan_on_test)
    path = table(tmp_path / "t.csv", n=200)
    out = tmp_path / "run"
    sets = ["--set", "data.label=target", "--set", "train.epochs=1", "--set", "train.threads=1"]
    assert main(["train", "tabular-entity", "--data", str(path), *sets, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "test metrics" in err[-1] and "are not finite" in err[-1] and "no result is reported" in err[-1]
    assert not (out / "summary.json").exists() and (out / "checkpoint.safetensors").exists()


def test_a_column_named_twice_is_refused(tmp_path, capsys):
    path = table(tmp_path / "t.csv", n=100)
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("noise", "x")  # city,day,x,x,target
    path.write_text("\n".join(lines) + "\n")
    assert main(["train", "tabular-entity", "--data", str(path), "--set", "data.label=target", "--out",
                 str(tmp_path / "run")]) == 2  # fmt: skip
    assert "expected a header row naming each column once. Received: --data=" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a training run of several epochs (3 s)
def test_a_run_whose_best_epoch_is_its_last_gets_a_hint(tmp_path):
    """A small table at the default batch takes few steps (480 rows, batch 256, 10 epochs: 20 steps): when the best
    validation epoch is the last one, the run says it may still be learning and what to change."""
    import io

    from rich.console import Console

    path = table(tmp_path / "t.csv", n=300)
    for epochs, lr in ((3, 1e-3), (12, 5e-2)):
        out = io.StringIO()
        s = recipes.train("tabular-entity", [f"data.train={path}", "data.label=target", f"train.epochs={epochs}",
                                             f"train.lr={lr}", "train.patience=None"], tmp_path / f"run{epochs}",
                          console=Console(file=out, width=300))  # fmt: skip
        said = "hint: the best validation auc came in the last epoch" in out.getvalue()
        assert said == (s.best_epoch == epochs), out.getvalue()
        if said:
            assert f"{epochs}; {epochs} training steps of 256 examples" in out.getvalue()
            assert f"--set train.epochs={2 * epochs}" in out.getvalue()

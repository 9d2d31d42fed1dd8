"""``embdrop config RECIPE``: every field of every recipe, with its type, value, default and meaning."""

import json
import re
import typing

import pytest

from embdrop import recipes
from embdrop.cli import main
from embdrop.recipes.config import fields
from embdrop.recipes.explain import comments, describe


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_field_of_every_recipe_says_what_it_means(name):
    preset = recipes.recipe(name).preset()
    rows = describe(preset, preset)
    assert [r.name for r in rows] == list(fields(preset))
    assert [r.name for r in rows if not r.meaning] == []  # a new field needs its comment in the dataclass


def test_config_prints_the_resolved_config_and_marks_what_differs(capsys):
    assert main(["config", "reviews-lstm", "--set", "train.lr=0.01", "--set", "model.hidden=8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "reviews-lstm: every field, as --set FIELD=VALUE takes it"
    lr = next(line for line in out if line.startswith("train.lr "))
    assert "= 0.01 (default 0.001)  # the learning rate" in lr
    hidden = next(line for line in out if line.startswith("model.hidden "))
    assert "int" in hidden and "= 8 (default 100)  # LSTM units" in hidden
    assert len(out) == 1 + len(fields(recipes.resolve("reviews-lstm")))
    assert main(["config", "ptb-lm", "--set", "variant=awd"]) == 0
    assert capsys.readouterr().out.startswith("ptb-lm (variant awd): ")


def test_every_field_declares_its_meaning_and_choices_are_typed():
    # the meaning is the field's own metadata (no source to read: a frozen application prints it too); a field of
    # choices is a Literal, listed as the type and checked when set
    from embdrop.recipes.config import TrainConfig, choices

    text = comments(TrainConfig)
    assert text["precision"].startswith('"bfloat16": the training step') and text["clip"].startswith("gradient norm")
    for name in recipes.RECIPES:
        rows = describe(recipes.resolve(name), recipes.resolve(name))
        assert all(r.meaning for r in rows), [r.name for r in rows if not r.meaning]
    assert choices(typing.get_type_hints(TrainConfig)["optimizer"]) == ("adam", "rmsprop", "sgd")


def test_a_choice_is_checked_when_set_and_when_a_run_is_read_back(tmp_path, capsys):
    with pytest.raises(
        ValueError, match=r"argument 'model.init': expected one of 'keras', 'torch'. Received: .*'glorot'"
    ):
        recipes.resolve("reviews-lstm", ["model.init=glorot"])
    assert main(["config", "reviews-lstm", "--set", "train.optimizer=adamw"]) == 2
    err = capsys.readouterr().err
    assert "'train.optimizer': expected one of 'adam', 'rmsprop', 'sgd'. Received: train.optimizer='adamw'" in err
    assert main(["config", "reviews-lstm"]) == 0
    assert "'adam' | 'rmsprop' | 'sgd'" in capsys.readouterr().out  # the choices, where the type is printed
    config = recipes.to_dict(recipes.resolve("reviews-lstm"))
    config["train"]["precision"] = "float16"  # a config.json edited by hand
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"train.precision=.*float16"):
        recipes.load_config(tmp_path, "RUN_DIR")


def test_mistakes_are_one_line(capsys):
    assert main(["config", "nope"]) == 2
    assert main(["config", "reviews-lstm", "--set", "model.hiden=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "did you mean model.hidden? 'embdrop config reviews-lstm' says what each means" in err[1]


def test_a_drop_rate_is_checked_with_the_config_and_named_by_its_field(capsys):
    # every dropout and zoneout field is a Rate: refused at 1 or above where it is set, before any layer is built
    for item in ("model.zoneout=1", "model.recurrent_dropout=-0.1", "model.dropout=nan"):
        field = item.partition("=")[0]
        with pytest.raises(ValueError, match=rf"argument '{field}': expected a float in \[0, 1\)"):
            recipes.resolve("reviews-lstm", [item])
    assert main(["config", "ptb-lm"]) == 0
    assert re.search(r"model.weight_dropout +float in \[0, 1\)", capsys.readouterr().out)

"""``embdrop config RECIPE``: every field of every recipe, with its type, value, default and meaning."""

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


def test_a_comment_above_a_field_is_its_meaning_too():
    from embdrop.recipes.config import TrainConfig

    text = comments(TrainConfig)
    assert text["precision"].startswith('"bfloat16": the training step') and text["clip"].startswith("gradient norm")


def test_mistakes_are_one_line(capsys):
    assert main(["config", "nope"]) == 2
    assert main(["config", "reviews-lstm", "--set", "model.hiden=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "did you mean model.hidden? 'embdrop config reviews-lstm' says what each means" in err[1]

import json
import shutil
from pathlib import Path

import pytest
from tests.recipes.test_train import quiet

from embdrop import recipes
from embdrop.recipes import text_classification
from embdrop.recipes.config import DataConfig, ModelConfig
from embdrop.recipes.predict import predict

# A run directory written by embdrop before the recipes became registry entries (reviews-lstm, tiny sizes, one
# epoch), and what predict gave for it then.
BEFORE = Path(__file__).parent / "fixtures" / "run-before-registry"
TEXTS = ["a wonderful product, works great", "terrible, broke after a day"]
PREDICTED_THEN = [0.5993, 0.5905]


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_has_a_typed_config(name):
    config = recipes.resolve(name)
    assert config.recipe == name
    assert isinstance(config.data, DataConfig) and isinstance(config.model, ModelConfig)
    assert type(config.data) is not DataConfig and type(config.model) is not ModelConfig


def test_dataset_recipes_are_the_text_recipes_on_a_dataset():
    for model in ("lstm", "cnn-lstm"):
        text, reviews, imdb = (recipes.resolve(f"{d}-{model}") for d in ("text", "reviews", "imdb"))
        assert type(text.model) is type(reviews.model) is type(imdb.model) and text.model == imdb.model
        assert recipes.recipe(f"imdb-{model}").build is recipes.recipe(f"text-{model}").build
        assert recipes.recipe(f"imdb-{model}").task is text_classification.task
        assert (reviews.data.name, imdb.data.name, imdb.train.epochs) == ("reviews", "imdb", 5)


def test_a_run_written_before_the_registry_predicts_as_it_did():
    got = [p.probability for p in predict(BEFORE, TEXTS)]
    assert got == pytest.approx(PREDICTED_THEN, abs=1e-4)


def test_a_run_written_before_the_registry_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(BEFORE, run)
    summary = recipes.train(resume=run, overrides=["train.epochs=2"], console=quiet())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert summary.best_epoch in (1, 2) and 0 < summary.test["accuracy"] <= 1
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2


def test_an_old_table_config_reads_its_renamed_field(tmp_path):
    old = recipes.to_dict(recipes.resolve("flights-entity"))
    old["data"] = {"name": "flights", "root": None, "max_tokens": 5, "maxlen": 0, "padding": "post",
                   "punctuation": "split"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = recipes.load_config(tmp_path, "--resume")
    assert config.data.min_count == 5 and not hasattr(config.data, "max_tokens")


def test_variant_of_a_recipe_without_variants_is_refused():
    with pytest.raises(ValueError, match="has no variants"):
        recipes.resolve("text-lstm", ["variant=naive"])


def test_a_run_from_before_data_markup_keeps_its_line_breaks(tmp_path):
    """data.markup came later with the default "strip": a run whose config.json does not name it was trained on
    texts with their <br />, and must predict and resume with them."""
    assert recipes.resolve("reviews-lstm").data.markup == "strip"
    old = recipes.to_dict(recipes.resolve("reviews-lstm"))
    del old["data"]["markup"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert recipes.load_config(tmp_path, "RUN_DIR").data.markup == "keep"
    old["data"]["markup"] = "strip"
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert recipes.load_config(tmp_path, "RUN_DIR").data.markup == "strip"
    with pytest.raises(ValueError, match="argument 'data.markup'"):
        from embdrop.recipes.text_classification import tokenizer

        tokenizer(recipes.resolve("reviews-lstm", ["data.markup=html"]).data)

import json
import math
import shutil
from pathlib import Path

import pytest
from tests.recipes.test_train import quiet

import embdrop
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


LM_BEFORE = Path(__file__).parent / "fixtures" / "run-before-redesign-lm"
# what the AWD language model above (3 LSTMs, weight drop on each, tied weights) gave for these ids before the core
# was redesigned (issue 37: dispatch in functional/, one recurrent mask container, kernels split by job), read with
# that code: the next-word probabilities after the sixth id, first eight words
LM_IDS = [[2, 5, 7, 3, 4, 1]]
LM_PREDICTED_THEN = [0.000458, 0.000449, 0.287272, 0.005362, 0.039691, 0.002175, 0.334856, 0.294951]


def _lm_corpus(root: Path) -> Path:
    """The corpus the fixture was trained on (numpy's generator, seed 0), in PTB's layout."""
    import numpy as np

    rng = np.random.default_rng(0)
    words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "rug", "a", "big", "small"]
    (root / "ptb").mkdir(parents=True)
    for split, n in (("train", 120), ("valid", 20), ("test", 20)):
        lines = [f"the {' '.join(rng.choice(words, 3))} sat on a mat" for _ in range(n)]
        (root / "ptb" / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    return root / "ptb"


def test_a_language_model_written_before_the_redesign_predicts_as_it_did():
    import torch

    loaded = embdrop.load_run(LM_BEFORE)
    states = [torch.zeros(1, 1, t.shape[2]) for t in loaded.example[1:]]  # each layer's h and c, zero
    with torch.no_grad():
        probabilities = loaded.model(torch.tensor(LM_IDS), *states)[0]  # (1, 6, V)
    assert probabilities[0, -1, :8].tolist() == pytest.approx(LM_PREDICTED_THEN, abs=2e-6)


def test_a_language_model_written_before_the_redesign_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LM_BEFORE, run)
    corpus = _lm_corpus(tmp_path / "corpus")
    config = json.loads((run / "config.json").read_text())
    config["data"]["root"] = str(corpus)  # where the corpus is on this machine
    (run / "config.json").write_text(json.dumps(config))
    # the same texts in new files (their times differ): the run is told to go on with them
    summary = recipes.train(resume=run, overrides=["train.epochs=2"], console=quiet(), allow_changed_data=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert summary.best_epoch in (1, 2) and math.isfinite(summary.test["perplexity"])

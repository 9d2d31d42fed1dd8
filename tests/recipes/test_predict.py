import pytest
import torch
from tests.recipes.test_train import FAST, quiet

from embdrop import recipes
from embdrop.recipes.predict import load_model, predict


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

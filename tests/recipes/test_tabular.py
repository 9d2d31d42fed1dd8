import itertools
import math

import pytest
import torch
from tests.recipes.test_train import quiet

from embdrop import recipes
from embdrop.recipes import flights_entity
from embdrop.recipes.tabular import auc


def test_auc_is_the_pairwise_ranking_probability_with_ties_as_half():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (60,), generator=g).float()  # many ties
    labels = (torch.rand(60, generator=g) < 0.4).float()
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert auc(scores, labels) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    assert auc(torch.tensor([0.1, 0.9]), torch.tensor([0.0, 1.0])) == 1.0
    assert math.isnan(auc(torch.tensor([0.1, 0.9]), torch.tensor([1.0, 1.0])))


@pytest.mark.slow  # a full training run
def test_movielens_mf_beats_both_baselines_computed_in_the_same_run(tmp_path):
    s = recipes.train("movielens-mf", ["train.epochs=3"], tmp_path / "run", console=quiet())
    assert s.test["rmse"] < s.test["bias_only_rmse"] < s.test["global_mean_rmse"]
    assert (tmp_path / "run" / "categories.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (train.device=cuda)")
def test_tabular_recipes_train_on_a_gpu(tmp_path):
    s = recipes.train("movielens-mf", ["train.epochs=3", "train.device=cuda"], tmp_path / "mf", console=quiet())
    assert s.test["rmse"] < s.test["bias_only_rmse"]
    s = recipes.train("flights-entity", ["train.epochs=1", "train.device=cuda", "train.mc=3"], tmp_path / "fl",
                      console=quiet())  # fmt: skip
    assert 0.6 < s.test["auc"] < 1.0 and 0.6 < s.test["mc_auc"] < 1.0


@pytest.mark.slow  # three full training runs
@pytest.mark.parametrize("kind", ["embedding", "hash", "onehot"])
def test_flights_kinds_beat_chance(tmp_path, kind):
    s = recipes.train("flights-entity", [f"model.kind={kind}", "train.epochs=1"], tmp_path / "run", console=quiet())
    assert 0.6 < s.test["auc"] < 1.0 and 0 < s.test["loss"] < math.log(2)


def test_onehot_is_logistic_regression_on_the_codes():
    m = flights_entity.EntityNet([3, 4], flights_entity.EntityModel(kind="onehot"))
    with torch.no_grad():
        m.tables[0].weight.copy_(torch.tensor([[0.0], [1.0], [2.0]]))
        m.tables[1].weight.copy_(torch.tensor([[0.0], [10.0], [20.0], [30.0]]))
        m.bias.fill_(0.5)
    codes = torch.tensor([[1, 3], [2, 0]])
    assert m(codes, codes).tolist() == [31.5, 2.5]


def test_unknown_kind_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="model.kind"):
        recipes.train("flights-entity", ["model.kind=forest"], tmp_path / "run", console=quiet())
    assert not (tmp_path / "run").exists()

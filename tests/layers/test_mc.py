import pytest
import torch
from torch import nn

from embdrop import DropConnect, Embedding, SpatialDropout1D, mc_dropout, mc_predict


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class Classifier(nn.Module):
    def __init__(self, probs="binary"):
        super().__init__()
        self.emb = Embedding(20, 8, padding_idx=0, dropout=0.2)
        self.drop = SpatialDropout1D(0.3)
        self.bn = nn.BatchNorm1d(8)
        self.torch_drop = nn.Dropout(0.5)
        self.out = nn.Linear(8, 1 if probs == "binary" else 3)
        self.probs = probs

    def forward(self, ids):
        h = self.drop(self.emb(ids)).mean(1)  # (B, E)
        z = self.out(self.torch_drop(self.bn(h)))
        return torch.sigmoid(z) if self.probs == "binary" else torch.softmax(z, -1)


IDS = torch.randint(1, 20, (6, 9), generator=gen(3))


def test_only_dropout_layers_train_and_flags_are_restored():
    model = Classifier()
    model.train()
    model.bn.eval()  # a mixed starting state must come back as it was
    before = {n: m.training for n, m in model.named_modules()}
    with mc_dropout(model):
        on = {n for n, m in model.named_modules() if m.training}
        assert on == {"emb", "drop", "torch_drop"}
    assert {n: m.training for n, m in model.named_modules()} == before


def test_flags_restored_after_an_exception():
    model = Classifier().eval()
    with pytest.raises(RuntimeError), mc_dropout(model):
        raise RuntimeError("boom")
    assert not any(m.training for m in model.modules())


def test_dropconnect_inner_module_stays_in_eval():
    model = nn.Sequential(DropConnect(nn.LSTM(3, 4, num_layers=2, dropout=0.5), 0.5, names=("weight_hh_l0",)))
    with mc_dropout(model):
        assert model[0].training and not model[0].module.training


def test_mc_predict_binary_shapes_entropy_and_mutual_information():
    model = Classifier()
    r = mc_predict(model, IDS, samples=40, generator=gen(0), probs="binary")
    assert r.samples.shape == (40, 6, 1) and r.mean.shape == (6, 1) and r.std.shape == (6, 1)
    assert torch.allclose(r.mean, r.samples.mean(0)) and torch.allclose(r.std, r.samples.std(0, correction=0))
    assert (r.mutual_information > 0).all() and (r.std > 0).all() and (r.mutual_information <= r.entropy).all()
    assert model.training  # untouched afterwards


class Alternating(nn.Module):
    """P(y=1) = 0.2 on even passes and 0.8 on odd ones: a model whose uncertainty is known by hand."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.full((x.shape[0], 1), 0.2 if self.calls % 2 else 0.8)


def test_mc_predict_entropy_and_mutual_information_of_a_known_model():
    # mean 0.5: entropy ln 2 = 0.693147; each pass H(0.2) = -(0.2 ln 0.2 + 0.8 ln 0.8) = 0.500402; the mutual
    # information is their difference, 0.192745 nats
    r = mc_predict(Alternating(), torch.zeros(3, 1), samples=10, probs="binary")
    assert torch.allclose(r.mean, torch.full((3, 1), 0.5))
    assert torch.allclose(r.entropy, torch.full((3, 1), 0.693147), atol=1e-5)
    assert torch.allclose(r.mutual_information, torch.full((3, 1), 0.192745), atol=1e-5)
    assert torch.allclose(r.std, torch.full((3, 1), 0.3))


def test_mc_predict_categorical():
    r = mc_predict(Classifier("categorical"), IDS, samples=25, generator=gen(1), probs="categorical")
    assert r.entropy.shape == (6,) and r.mutual_information.shape == (6,)
    assert (r.mutual_information >= -1e-6).all() and (r.entropy <= torch.log(torch.tensor(3.0)) + 1e-6).all()


def test_mc_predict_is_reproducible_and_leaves_the_global_rng_alone():
    model = Classifier()
    state = torch.get_rng_state()
    a = mc_predict(model, IDS, samples=5, generator=gen(7))
    b = mc_predict(model, IDS, samples=5, generator=gen(7))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(a.samples[0], a.samples[1])


def test_a_model_without_dropout_has_no_spread():
    model = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    r = mc_predict(model, torch.randn(4, 3), samples=5, probs="binary")
    assert (r.std == 0).all() and torch.allclose(r.mutual_information, torch.zeros(4, 1), atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match=r"argument 'samples': expected an int >= 1\. Received: samples=0"):
        mc_predict(Classifier(), IDS, samples=0)
    with pytest.raises(ValueError, match=r"argument 'probs': expected one of 'binary', 'categorical'"):
        mc_predict(Classifier(), IDS, probs="logits")

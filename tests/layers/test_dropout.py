import math

import pytest
import torch

import embdrop
from contract import check_layer_contract
from embdrop import Dropout, GaussianDropout, GaussianNoise, LockedDropout, SpatialDropout1D, TokenDropout, WordDropout


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def seq(dtype=torch.float32):
    return (torch.randn(3, 5, 4, generator=gen(9)).to(dtype),)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Dropout(0.3),
        lambda: Dropout(0.3, shared_dims=(1,)),
        lambda: Dropout(0.3, shared_dims=(0, -1)),
        lambda: SpatialDropout1D(0.4),
        lambda: TokenDropout(0.4),
        lambda: GaussianDropout(0.4),
        lambda: GaussianNoise(0.2),
    ],
    ids=["elementwise", "shared-T", "shared-B-C", "spatial", "token", "gaussian-dropout", "gaussian-noise"],
)
def test_layer_contract(make):
    check_layer_contract(make, seq)


def test_word_dropout_layer_contract():
    ids = torch.randint(2, 30, (4, 7), generator=gen(1))
    check_layer_contract(lambda: WordDropout(0.3, unk_id=1, padding_idx=0), lambda dt: (ids,), differentiable=False)


def test_locked_dropout_drops_whole_channels_for_every_time_step():
    """AWD-LSTM's locked dropout: one mask per (sample, channel), the same at every step."""
    y = LockedDropout(0.5)(torch.ones(8, 7, 5), generator=gen(1))
    assert (y == y[:, :1]).all()
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert embdrop.LockedDropout(0.5)(torch.ones(2, 3, 4)).shape == (2, 3, 4)


def test_shared_dims_1_is_keras_noise_shape_none_1_none():
    # Keras Dropout(p, noise_shape=(None, 1, None)): one mask (B, 1, C) broadcast over T, survivors / (1 - p).
    x = torch.rand(4, 6, 5) + 0.5
    p = 0.5
    layer = Dropout(p, shared_dims=(1,))
    mask = layer.sample_mask(x, generator=gen(3))
    assert mask.shape == (4, 1, 5)
    y = layer(x, mask=mask)
    assert torch.allclose(y, x * mask / (1 - p))
    # identical draws to SpatialDropout1D under the same seed
    assert torch.equal(layer(x, generator=gen(5)), SpatialDropout1D(p)(x, generator=gen(5)))


@pytest.mark.parametrize("seed", range(25))
def test_spatial_channel_all_zero_or_all_kept_along_T_any_seed(seed):
    y = SpatialDropout1D(0.5)(torch.rand(4, 7, 6) + 0.1, generator=gen(seed))
    assert ((y == 0).all(dim=1) | (y != 0).all(dim=1)).all()


@pytest.mark.parametrize("seed", range(25))
def test_token_step_all_zero_or_all_kept_along_C_any_seed(seed):
    y = TokenDropout(0.5)(torch.rand(4, 7, 6) + 0.1, generator=gen(seed))
    assert ((y == 0).all(dim=2) | (y != 0).all(dim=2)).all()


@pytest.mark.parametrize(
    ("layer", "units"),
    [(Dropout(0.3), 60 * 50 * 40), (SpatialDropout1D(0.3), 60 * 40), (TokenDropout(0.3), 60 * 50)],
    ids=["dropout", "spatial", "token"],
)
def test_keep_rate_within_four_sigma(layer, units):
    y = layer(torch.ones(60, 50, 40), generator=gen(0))
    p = 0.3
    keep = (y != 0).double().mean().item()  # each independent unit covers the same number of entries
    assert abs(keep - (1 - p)) < 4 * math.sqrt(p * (1 - p) / units)
    assert torch.allclose(y[y != 0], torch.tensor(1 / (1 - p)))


@pytest.mark.parametrize(
    "make",
    [lambda: Dropout(0.0), lambda: SpatialDropout1D(0.0), lambda: TokenDropout(0.0), lambda: GaussianDropout(0.0),
     lambda: GaussianNoise(0.0)],
)  # fmt: skip
def test_p_zero_returns_input_and_draws_nothing(make):
    x = torch.randn(2, 3, 4)
    g = gen(1)
    gs, glob = g.get_state(), torch.get_rng_state()
    assert make()(x, generator=g) is x
    assert torch.equal(g.get_state(), gs) and torch.equal(torch.get_rng_state(), glob)


def test_eval_returns_the_input_object():
    layer = SpatialDropout1D(0.5).eval()
    x = torch.randn(2, 3, 4)
    assert layer(x) is x


def test_given_mask_is_applied_and_checked():
    x = torch.ones(2, 3, 4)
    layer = SpatialDropout1D(0.5)
    mask = torch.tensor([[1.0, 0, 1, 0], [0, 0, 1, 1]]).unsqueeze(1)
    assert torch.equal(layer(x, mask=mask), (mask * 2).expand(2, 3, 4))
    with pytest.raises(ValueError, match=r"argument 'mask': expected a mask of shape \(2, 1, 4\)"):
        layer(x, mask=torch.ones(2, 3, 4))


def test_word_dropout_given_mask_and_eval():
    ids = torch.tensor([[4, 5, 6]])
    layer = WordDropout(0.5, unk_id=1)
    assert torch.equal(layer(ids, mask=torch.tensor([[True, False, True]])), torch.tensor([[4, 1, 6]]))  # keep-mask
    keep = layer.sample_mask(torch.tensor([[4, 5, 6, 0] * 50]), generator=torch.Generator().manual_seed(0))
    assert keep.dtype == torch.bool and keep.any() and not keep.all()  # True where the word is kept
    assert layer.eval()(ids) is ids


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "0.5"])
@pytest.mark.parametrize("cls", [Dropout, SpatialDropout1D, TokenDropout])
def test_bad_p(cls, p):
    with pytest.raises(ValueError, match=r"Invalid value for argument 'p': expected a float in \[0, 1\)\. Received"):
        cls(p)


def test_bad_shared_dims():
    with pytest.raises(ValueError, match=r"argument 'shared_dims': expected axes in \[-3, 3\)"):
        Dropout(0.5, shared_dims=(3,))(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"argument 'shared_dims': expected a tuple of distinct ints"):
        Dropout(0.5, shared_dims=("T",))


def test_wrong_rank_and_dtype():
    with pytest.raises(
        ValueError,
        match=r"argument 'x': expected a tensor of rank 3 with shape \(B, T, C\)\. "
        r"Received: x=tensor of shape \(3, 4\)",
    ):
        SpatialDropout1D(0.5)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="argument 'x': expected a floating-point tensor"):
        Dropout(0.5)(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"argument 'ids': expected an integer tensor"):
        WordDropout(0.5, unk_id=1)(torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"argument 'unk_id': expected an int >= 0"):
        WordDropout(0.5, unk_id=-1)


def test_extra_repr_shows_non_defaults():
    assert repr(Dropout(0.5)) == "Dropout(p=0.5)"
    assert repr(Dropout(0.5, shared_dims=(1,))) == "Dropout(p=0.5, shared_dims=(1,))"
    assert repr(SpatialDropout1D(0.2)) == "SpatialDropout1D(p=0.2)"


def test_gaussian_dropout_and_noise_have_kerass_moments_within_four_sigma():
    n = 200_000
    p = 0.3
    y = GaussianDropout(p)(torch.full((n,), 2.0), generator=gen(0))  # 2 * N(1, p / (1 - p))
    std = 2 * math.sqrt(p / (1 - p))
    assert abs(y.mean().item() - 2.0) < 4 * std / math.sqrt(n)
    assert abs(y.std().item() - std) < 4 * std / math.sqrt(2 * n)
    z = GaussianNoise(0.5)(torch.full((n,), 2.0), generator=gen(1))  # 2 + N(0, 0.25)
    assert abs(z.mean().item() - 2.0) < 4 * 0.5 / math.sqrt(n) and abs(z.std().item() - 0.5) < 4 * 0.5 / math.sqrt(
        2 * n
    )
    noise = GaussianDropout(p).sample_mask(torch.ones(3, 4), generator=gen(2))
    got = GaussianDropout(p)(torch.full((3, 4), 5.0), mask=noise)
    assert torch.equal(got, 5.0 * noise)  # a given mask is applied as it is
    with pytest.raises(ValueError, match="argument 'std': expected a finite float >= 0"):
        GaussianNoise(-1.0)

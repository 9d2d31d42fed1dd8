import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from embdrop.functional import masks as M


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_within_four_sigma(p):
    n = 200_000
    keep = M.bernoulli_keep((n,), p, generator=gen(0))
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(keep.mean().item() - (1 - p)) < 4 * sigma


def test_one_uniform_draw_per_entry_and_extremes():
    g, ref = gen(4), gen(4)
    M.bernoulli_keep((10, 3), 0.3, generator=g)
    torch.empty(30).uniform_(generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())
    assert M.bernoulli_keep((1000,), 0.0, generator=gen()).eq(1).all()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    before=st.integers(0, 1400),
    n=st.integers(0, 2600),
    p=st.sampled_from([0.0, 0.1, 0.5, 1 / 3, 0.999999, 1.0]) | st.floats(0.0, 1.0),
    own_generator=st.booleans(),
)
def test_the_kernel_draws_torchs_own_mask_and_leaves_the_generator_where_torch_leaves_it(
    seed, before, n, p, own_generator
):
    """Float32 CPU masks come from the kernel once it is loaded: the same numbers of the same generator (its
    Mersenne Twister regenerates every 624 words; ``before`` starts the draw anywhere in that cycle), the same bits
    as uniform_ and lt_, and the generator (a given one or the global one) left exactly where they leave it."""
    from embdrop.kernels import build

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")

    def draw(kernel: bool):
        with torch.random.fork_rng():
            g = gen(seed) if own_generator else None
            if g is None:
                torch.manual_seed(seed)
            torch.rand(before, generator=g)
            if kernel:
                assert M._kernel_draw("cpu", torch.float32, g)  # the kernel's draw, not torch's, is under test
                mask = M.bernoulli_keep((n, 1), p, device="cpu", generator=g)
            else:
                mask = torch.empty(n, 1).uniform_(generator=g).lt_(1.0 - p)
            return mask, torch.rand(5, generator=g)

    (mask, after), (expected, expected_after) = draw(True), draw(False)
    assert mask.dtype == torch.float32 and torch.equal(mask, expected)
    assert torch.equal(after, expected_after)


def test_torchs_ops_draw_where_the_kernel_may_not():
    from embdrop.kernels import build

    build.available()
    assert not M._kernel_draw("cpu", torch.float64, None)  # uniform_ draws 64-bit words for float64
    assert not M._kernel_draw(None, torch.float32, None)  # torch's default device may not be the CPU
    assert not M._kernel_draw("meta", torch.float32, None)
    with torch._subclasses.FakeTensorMode():  # a dispatch mode must see the draw
        assert not M._kernel_draw("cpu", torch.float32, None)
    # under vmap torch's draw runs, and vmap refuses it as it refuses torch's own (the kernel would draw unseen)
    with pytest.raises(RuntimeError, match="randomness"):
        draw = lambda x: x * M.bernoulli_keep((3,), 0.5, device="cpu")  # noqa: E731
        torch.func.vmap(draw, randomness="different")(torch.ones(4, 3))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_hashed_keep_rate_and_pair_independence_within_four_sigma(p):
    n = 400_000
    keep = M.bernoulli_keep_hashed((n,), p, generator=gen(1))
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    q = 1 - p
    assert abs(keep.mean().item() - q) < 4 * math.sqrt(p * q / n)
    # neighbours (i, i + 1), (i, i + 64) and rows of a (650, 650)-like layout are independent: P(both kept) = q^2
    for lag in (1, 64, 650):
        both = (keep[:-lag] * keep[lag:]).mean().item()
        assert abs(both - q * q) < 4 * math.sqrt(q * q * (1 - q * q) / (n - lag))
    # two keys give unrelated masks: they agree where independent masks would (q^2 + p^2)
    other = M.bernoulli_keep_hashed((n,), p, generator=gen(2))
    agree = (keep == other).float().mean().item()
    assert abs(agree - (q * q + p * p)) < 4 * math.sqrt(0.25 / n)


def test_hashed_mask_repeats_with_the_seed_draws_one_key_and_matches_its_fallbacks(monkeypatch):
    from embdrop.kernels import build

    a = M.bernoulli_keep_hashed((300, 70), 0.4, generator=gen(5))
    assert torch.equal(a, M.bernoulli_keep_hashed((300, 70), 0.4, generator=gen(5)))
    g, ref = gen(5), gen(5)
    M.bernoulli_keep_hashed((300, 70), 0.4, generator=g)
    torch.randint(-(2**63), 2**63 - 1, (), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())  # one draw from the generator, whatever the size
    assert M.bernoulli_keep_hashed((50,), 0.0, generator=gen()).eq(1).all()
    assert M.bernoulli_keep_hashed((50,), 1.0, generator=gen()).eq(0).all()
    # without the compiled kernel (numpy), and on other devices (torch int64 ops): the same bits
    monkeypatch.setattr(build, "available", lambda: False)
    assert torch.equal(a, M.bernoulli_keep_hashed((300, 70), 0.4, generator=gen(5)))
    key = int(torch.randint(-(2**63), 2**63 - 1, (), generator=gen(5)))
    by_torch = M._hashed_bits(300 * 70, key, torch.device("cpu"), numpy=False)
    assert torch.equal(by_torch, M._hashed_bits(300 * 70, key, torch.device("cpu"), numpy=True))
    assert M.bernoulli_keep_hashed((3, 4), 0.5, dtype=torch.float64, generator=gen()).dtype == torch.float64
    # the deferred mask (weight drop's), written out without the kernel: the same bits
    deferred = M.deferred_keep_hashed((300, 70), 0.4, generator=gen(5))
    assert isinstance(deferred, Tensor) and torch.equal(deferred, a)


@pytest.mark.parametrize("threshold", [0, 1, 2**31, 2**32 - 1, 2**32])
def test_kernel_keep_mask_at_the_threshold_edges(threshold):
    from embdrop.kernels import build, hashed

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    key = torch.tensor(-123456789)
    expected = (M._hashed_bits(5000, int(key), torch.device("cpu"), numpy=True) < threshold).float()
    assert torch.equal(hashed.keep_mask((5000,), threshold, key, torch.float32), expected)
    x = torch.randn(5000, generator=gen(1))
    assert torch.equal(hashed.hashed_scale(x, key, threshold, 1.5), x * expected * 1.5)


def test_p_one_is_all_zero_and_dtype_device_follow_input():
    x = torch.ones(4, 5, dtype=torch.float64)
    assert M.dropout_mask(x, 1.0, generator=gen()).eq(0).all()
    m = M.dropout_mask(x, 0.5, generator=gen())
    assert m.dtype == torch.float64 and m.device == x.device


def test_shared_shape():
    assert M.shared_shape((3, 5, 4), (1,)) == (3, 1, 4)
    assert M.shared_shape((3, 5, 4), (-1,)) == (3, 5, 1)
    assert M.shared_shape((3, 5, 4), ()) == (3, 5, 4)
    assert M.shared_shape((3, 5, 4), (0, 1)) == (1, 1, 4)
    with pytest.raises(ValueError, match="shared_dims"):
        M.shared_shape((3, 5), (2,))


@pytest.mark.parametrize("seed", range(10))
def test_word_type_mask_sample_mode_shares_within_sequence_any_seed(seed):
    ids = torch.randint(0, 6, (8, 30), generator=gen(100 + seed))
    keep = M.word_type_mask(ids, 0.5, mode="sample", generator=gen(seed))
    for b in range(ids.shape[0]):
        for w in ids[b].unique():
            vals = keep[b][ids[b] == w]
            assert (vals == vals[0]).all()


@pytest.mark.parametrize("seed", range(10))
def test_word_type_mask_batch_mode_shares_across_batch_any_seed(seed):
    ids = torch.randint(0, 6, (8, 30), generator=gen(100 + seed))
    keep = M.word_type_mask(ids, 0.5, mode="batch", generator=gen(seed))
    for w in ids.unique():
        vals = keep[ids == w]
        assert (vals == vals[0]).all()


def test_word_type_mask_sample_mode_draws_each_sequence_separately():
    # Word 3 in every one of 4000 sequences: dropped in about p of them, not all-or-none.
    ids = torch.full((4000, 5), 3)
    p = 0.3
    keep = M.word_type_mask(ids, p, mode="sample", generator=gen(0))[:, 0]
    sigma = math.sqrt(p * (1 - p) / 4000)
    assert abs(keep.mean().item() - (1 - p)) < 4 * sigma
    batch = M.word_type_mask(ids, p, mode="batch", generator=gen(0))
    assert batch.unique().numel() == 1


@pytest.mark.parametrize("kernel", [True, False])
def test_word_type_mask_reads_the_hashed_table_at_the_ids_and_draws_one_key(kernel, monkeypatch):
    # The (B, V) ("sample") or (V,) ("batch") mask of bernoulli_keep_hashed under the same key, read at the ids;
    # with or without the compiled kernel, and whatever the vocabulary's size: one draw from the generator.
    from embdrop.kernels import build

    if not kernel:
        monkeypatch.setattr(build, "available", lambda: False)
    ids = torch.randint(0, 50, (6, 9), generator=gen(11))
    rows = torch.arange(6).unsqueeze(1)
    for mode, table_shape in (("sample", (6, 50)), ("batch", (50,))):
        keep = M.word_type_mask(ids, 0.3, mode=mode, num_embeddings=50, padding_idx=4, generator=gen(3))
        table = M.bernoulli_keep_hashed(table_shape, 0.3, generator=gen(3))
        expected = (table[rows, ids] if mode == "sample" else table[ids]).masked_fill(ids == 4, 1.0)
        assert torch.equal(keep, expected)
        scaled = M.word_type_mask(ids, 0.3, mode=mode, num_embeddings=50, padding_idx=4, scale=2.5, generator=gen(3))
        assert torch.equal(scaled, torch.where(ids == 4, 1.0, expected * 2.5))
    big = torch.tensor([[5, 9_999_999, 5, 42], [42, 42, 7, 5]])
    for mode in ("sample", "batch"):
        g, ref = gen(3), gen(3)
        M.word_type_mask(big, 0.5, mode=mode, num_embeddings=10_000_000, generator=g)
        torch.randint(-(2**63), 2**63 - 1, (), generator=ref)
        assert torch.equal(g.get_state(), ref.get_state())


def test_word_type_mask_past_the_hash_counter_still_shares_within_sequences():
    # B x V >= 2^32: one uniform draw per distinct (sequence, id) instead.
    ids = torch.randint(0, 5, (3, 40), generator=gen(6)) * 1_000_000_000
    keep = M.word_type_mask(ids, 0.5, mode="sample", num_embeddings=2**32, scale=2.0, generator=gen(1))
    assert set(keep.unique().tolist()) <= {0.0, 2.0}
    for b in range(3):
        for w in ids[b].unique():
            assert keep[b][ids[b] == w].unique().numel() == 1


def test_word_type_mask_does_not_depend_on_position_order():
    ids = torch.randint(0, 20, (4, 12), generator=gen(1))
    perm = torch.randperm(12, generator=gen(2))
    a = M.word_type_mask(ids, 0.5, generator=gen(7))
    b = M.word_type_mask(ids[:, perm], 0.5, generator=gen(7))
    assert torch.equal(a[:, perm], b)


def test_word_type_mask_keeps_padding_always():
    ids = torch.randint(0, 3, (50, 20), generator=gen(4))
    for seed in range(5):
        keep = M.word_type_mask(ids, 0.9, padding_idx=0, generator=gen(seed))
        assert (keep[ids == 0] == 1).all()


def test_word_type_mask_keep_rate_over_types():
    ids = torch.arange(100_000).reshape(100, 1000)
    p = 0.4
    keep = M.word_type_mask(ids, p, mode="batch", generator=gen(0))
    sigma = math.sqrt(p * (1 - p) / ids.numel())
    assert abs(keep.mean().item() - (1 - p)) < 4 * sigma


def test_word_keep_mask_rate_and_padding():
    ids = torch.randint(0, 5, (400, 500), generator=gen(5))
    p = 0.25
    keep = M.word_keep_mask(ids, p, padding_idx=0, generator=gen(0))
    assert keep.dtype == torch.bool
    assert keep[ids == 0].all()
    drop = ~keep
    real = ids != 0
    n = int(real.sum())
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(drop[real].float().mean().item() - p) < 4 * sigma

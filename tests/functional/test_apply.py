import math

import pytest
import torch
from torch.autograd import gradcheck

import embdrop.functional as F


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_survivors_are_scaled_by_one_over_keep():
    x = torch.randn(6, 7, 8)
    p = 0.3
    y = F.dropout(x, p, generator=gen())
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - p))
    assert 0 < kept.float().mean() < 1


def test_expectation_is_the_input_within_four_sigma():
    n, p = 400_000, 0.3
    y = F.dropout(torch.ones(n), p, generator=gen(0))
    sigma = math.sqrt(p / (1 - p) / n)  # std of x*m/(1-p) for x = 1 is sqrt(p/(1-p))
    assert abs(y.mean().item() - 1.0) < 4 * sigma


def test_p_zero_and_eval_return_the_input_without_drawing():
    x = torch.randn(3, 4)
    g = gen(0)
    state, global_state = g.get_state(), torch.get_rng_state()
    assert F.dropout(x, 0.0, generator=g) is x
    assert F.dropout(x, 0.7, training=False, generator=g) is x
    assert torch.equal(g.get_state(), state) and torch.equal(torch.get_rng_state(), global_state)


def test_p_one_gives_zeros_with_finite_gradients():
    x = torch.randn(5, 6, requires_grad=True)
    y = F.dropout(x, 1.0, generator=gen())
    assert (y == 0).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()


def test_spatial_and_token_masks_have_their_shapes():
    x = torch.randn(4, 9, 5)
    s = F.spatial_dropout1d(x, 0.5, generator=gen())
    assert (((s == 0).all(1)) | ((s != 0).all(1))).all()
    t = F.token_dropout(x, 0.5, generator=gen())
    assert (((t == 0).all(2)) | ((t != 0).all(2))).all()
    with pytest.raises(ValueError, match=r"argument 'x': expected a tensor of rank 3 with shape \(B, T, C\)"):
        F.spatial_dropout1d(torch.randn(4, 5), 0.5)


@pytest.mark.parametrize("fn", [F.dropout, F.spatial_dropout1d, F.token_dropout])
def test_gradcheck_float64_with_reseeded_generator(fn):
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: fn(t, 0.4, generator=gen(11)), (x,))


def test_embedding_gradcheck_float64_through_the_weight():
    # No padding_idx here: its row gets zero gradient on purpose (as nn.Embedding), which gradcheck would flag.
    ids = torch.tensor([[1, 2, 1, 0], [3, 3, 2, 0]])
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: F.embedding(ids, t, p=0.5, generator=gen(2)), (w,))


def test_embedding_mask_multiplies_lookup_and_spares_padding():
    w = torch.randn(6, 4)
    w[0] = 7.0  # a non-zero padding row must come out unscaled
    ids = torch.tensor([[1, 2, 1, 0, 0], [2, 3, 3, 5, 0]])
    keep = torch.tensor([[0.0, 1, 0, 1, 1], [1, 1, 1, 0, 1]])
    y = F.embedding(ids, w, p=0.5, padding_idx=0, mask=keep)
    assert torch.equal(y[ids == 0], w[0].expand(3, 4))
    assert torch.allclose(y[0, 1], w[2] * 2) and (y[0, 0] == 0).all() and (y[1, 3] == 0).all()


def test_word_dropout_replaces_by_unk_and_never_touches_padding():
    ids = torch.randint(2, 50, (30, 40), generator=gen(1))
    ids[:, -5:] = 0
    out = F.word_dropout(ids, 0.5, unk_id=1, padding_idx=0, generator=gen(0))
    changed = out != ids
    assert (out[changed] == 1).all()
    assert (out[:, -5:] == 0).all()
    assert 0.4 < changed[:, :-5].float().mean() < 0.6


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("padding_idx", [None, 0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("mode", "given"), [("sample", False), ("batch", False), ("sample", True)])
def test_embedding_fused_kernel_equals_torch_ops(sparse, padding_idx, dtype, mode, given, monkeypatch):
    # The fused lookup-and-scale (forward, dense or sparse gradient) against F.embedding times the mask: the mask
    # drawn as a key and computed in the kernel (embedding_hashed), or given as a tensor (embedding_scaled).
    from embdrop.kernels import build
    from embdrop.kernels import embedding as fused_embedding

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    ids = torch.randint(0, 9, (4, 7), generator=gen(2))
    ids[:, -2:] = 0
    w0 = torch.randn(9, 5, dtype=dtype, generator=gen(3))
    g_out = torch.randn(4, 7, 5, dtype=dtype, generator=gen(4))
    mask = (torch.rand(4, 7, generator=gen(6)) > 0.4).to(dtype) if given else None

    def run():
        w = w0.clone().requires_grad_()
        y = F.embedding(ids, w, p=0.4, mode=mode, padding_idx=padding_idx, sparse=sparse, mask=mask, generator=gen(5))
        y.backward(g_out)
        return y, w.grad

    ran = []
    for name in ("embedding_hashed", "embedding_scaled"):
        real = getattr(fused_embedding, name)
        monkeypatch.setattr(fused_embedding, name, lambda *a, _r=real, _n=name, **k: ran.append(_n) or _r(*a, **k))
    y_fused, g_fused = run()
    assert ran == ["embedding_scaled" if given else "embedding_hashed"]
    monkeypatch.setattr(build, "available", lambda: False)
    y_ref, g_ref = run()
    assert torch.equal(y_fused, y_ref)  # same mask (hashed either way), same products
    assert g_fused.layout == g_ref.layout
    assert torch.allclose(g_fused.to_dense(), g_ref.to_dense(), atol=1e-6)
    if sparse and padding_idx is not None:  # as nn.Embedding: no entry at all for the padding row
        assert not (g_fused.coalesce().indices() == padding_idx).any()


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_hashed_gradient_from_a_strided_gradient_and_two_uses(sparse, monkeypatch):
    # The kernel's autograd node (C++) gets whatever gradient the graph sends: here a transposed (non-contiguous)
    # one, and the output used twice (the engine sums both uses first); against the torch ops with the same mask.
    from embdrop.kernels import build

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    ids = torch.randint(0, 11, (3, 8), generator=gen(7))
    w0 = torch.randn(11, 4, generator=gen(8))
    g_t = torch.randn(8, 3, 4, generator=gen(9))

    def run():
        w = w0.clone().requires_grad_()
        y = F.embedding(ids, w, p=0.3, sparse=sparse, generator=gen(10))
        ((y.transpose(0, 1) * g_t).sum() + y[:, :2].pow(2).sum()).backward()
        return y, w.grad

    y_fused, g_fused = run()
    assert "EmbeddingHashed" in y_fused.grad_fn.name()  # the kernel's node ran, not the torch ops
    monkeypatch.setattr(build, "available", lambda: False)
    y_ref, g_ref = run()
    assert torch.equal(y_fused, y_ref)
    assert g_fused.is_sparse == sparse == g_ref.is_sparse
    assert torch.allclose(g_fused.to_dense(), g_ref.to_dense(), atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_of_padding_only_has_no_gradient_entries(sparse):
    from embdrop.kernels import build

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    w = torch.randn(5, 3, requires_grad=True)
    y = F.embedding(torch.zeros(2, 4, dtype=torch.long), w, p=0.5, padding_idx=0, sparse=sparse, generator=gen(1))
    y.sum().backward()
    assert torch.equal(y, w.detach()[0].expand(2, 4, 3))  # padding is never dropped or scaled
    assert (w.grad.to_dense() == 0).all()
    if sparse:
        assert w.grad._nnz() == 0


def test_embedding_fused_kernel_reads_strided_ids(monkeypatch):
    # A column of a (B, 2) table, as a recommender passes user and item ids: a strided (B, 1) view.
    from embdrop.kernels import build

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    codes = torch.stack(
        [torch.randint(0, 5, (40,), generator=gen(1)), torch.randint(0, 300, (40,), generator=gen(2))], 1
    )
    ids = codes[:, :1]  # (B, 1), stride (2, 1)
    w0 = torch.randn(5, 4, generator=gen(3))

    def run():
        w = w0.clone().requires_grad_()
        y = F.embedding(ids, w, p=0.3, generator=gen(4))
        y.sum().backward()
        return y, w.grad

    y_fused, g_fused = run()
    monkeypatch.setattr(build, "available", lambda: False)
    y_ref, g_ref = run()
    assert torch.equal(y_fused, y_ref) and torch.allclose(g_fused, g_ref, atol=1e-6)


def test_embedding_fused_kernel_checks_its_arguments():
    from embdrop.kernels import build
    from embdrop.kernels import embedding as fused_embedding

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    w = torch.randn(6, 3)
    ids = torch.tensor([[1, 2], [3, 6]])
    with pytest.raises(IndexError, match=r"Invalid value for argument 'ids': expected ids in \[0, 6\)\. Received: 6"):
        fused_embedding.embedding_scaled(w, ids, torch.ones(2, 2), padding_idx=None, sparse=False)
    with pytest.raises(ValueError, match="Invalid value for argument 'scale'"):
        fused_embedding.embedding_scaled(
            w, ids.clamp(max=5), torch.ones(2, 2, dtype=torch.float64), padding_idx=None, sparse=False
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_a_deferred_hashed_mask_applies_as_its_tensor(dtype):
    # Weight drop's mask, drawn and left unwritten: applied by the kernel in one pass each way, the same values and
    # gradients as the written mask (bit for bit: the same products), the same draws from the generator.
    from embdrop.functional import masks as M
    from embdrop.kernels import build

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    deferred = M.deferred_keep_hashed((40, 30), 0.3, dtype=dtype, generator=gen(7))
    assert isinstance(deferred, M.HashedKeep)
    tensor = M.bernoulli_keep_hashed((40, 30), 0.3, dtype=dtype, generator=gen(7))
    assert torch.equal(deferred.tensor(), tensor)
    w0, g_out = torch.randn(40, 30, generator=gen(1)).to(dtype), torch.randn(40, 30, generator=gen(2)).to(dtype)
    results = []
    for mask in (deferred, tensor):
        w = w0.clone().requires_grad_()
        y = F.apply_mask(w, mask, 0.3)
        y.backward(g_out)
        results.append((y, w.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert F.apply_mask(w0, M.deferred_keep_hashed((40, 30), 1.0, dtype=dtype, generator=gen()), 1.0).eq(0).all()


def test_deferred_hashed_mask_gradcheck_float64():
    from embdrop.functional import masks as M
    from embdrop.kernels import build

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    mask = M.deferred_keep_hashed((6, 7), 0.4, dtype=torch.float64, generator=gen(1))
    w = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda w: F.apply_mask(w, mask, 0.4), (w,))


def test_hashed_scale_argument_errors():
    from embdrop.kernels import build, hashed

    if not build.available():
        pytest.skip("the fused CPU kernel is not built here")
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="Invalid value for argument 'key'"):
        hashed.hashed_scale(x, torch.tensor(1.0), 2**31, 2.0)
    with pytest.raises(ValueError, match="Invalid value for argument 'threshold'.*Received: threshold=8589934592"):
        hashed.hashed_scale(x, torch.tensor(1), 2**33, 2.0)
    with pytest.raises(ValueError, match="Invalid value for argument 'x'.*torch.int64"):
        hashed.hashed_scale(torch.ones(3, dtype=torch.int64), torch.tensor(1), 2**31, 2.0)

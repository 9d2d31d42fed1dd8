import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embdrop.kernels import gemm

needs_kernel = pytest.mark.usefixtures("fused_kernel")


def _layouts(G, M, K, N, seed=0):
    """(a, b) pairs of the layouts the kernels pass: contiguous, b transposed (the input projection's weight view),
    a transposed (the weight gradient), a step's view with a batch stride, rows narrowed, a batch-expanded state."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    w = r(G * N, K)
    hm = r(G, 3, M + 2, K)
    return {
        "contiguous": (r(G, M, K), r(G, K, N)),
        "b transposed": (r(G, M, K), w.view(G, N, K).transpose(1, 2)),
        "a transposed": (r(G, K, M).transpose(1, 2), r(G, K, N)),
        "batch stride, narrowed": (hm.select(1, 1).narrow(1, 1, M), r(G, K, N)),
        "expanded": (r(M, K).unsqueeze(0).expand(G, M, K), r(G, K, N)),
    }


# the first shape is below the size from which oneDNN runs, the others above it (csrc/gemm.cpp: 3 * 2^20 multiply-adds
# per call)
@needs_kernel
@pytest.mark.parametrize("shape", [(4, 8, 16, 16), (4, 64, 200, 200), (3, 20, 650, 650)])
@pytest.mark.parametrize("layout", ["contiguous", "b transposed", "a transposed", "batch stride, narrowed", "expanded"])
def test_equals_torch_bmm_for_each_layout_the_kernels_pass(shape, layout):
    a, b = _layouts(*shape)[layout]
    got, want = gemm.bmm(a, b), torch.bmm(a, b)
    assert got.shape == want.shape and got.dtype == torch.float32
    # the same float32 products; only the order of the sums differs between GEMM providers
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@needs_kernel
def test_gradients_equal_torch_bmm_s():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 96, 200, generator=g).requires_grad_()
    w = torch.randn(4 * 150, 200, generator=g).requires_grad_()
    out = torch.randn(4, 96, 150, generator=g)
    grads = []
    for f in (gemm.bmm, torch.bmm):
        (f(a, w.view(4, 150, 200).transpose(1, 2)) * out).sum().backward()
        grads.append((a.grad.clone(), w.grad.clone()))
        a.grad = w.grad = None
    for got, want in zip(*grads, strict=True):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-4)


@needs_kernel
def test_only_the_input_that_needs_a_gradient_gets_one():
    a = torch.randn(2, 64, 256)
    b = torch.randn(2, 256, 256, requires_grad=True)
    gemm.bmm(a, b).sum().backward()
    assert a.grad is None and b.grad is not None


@needs_kernel
@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # torch.backends.mkldnn.flags says it on entry
def test_with_onednn_turned_off_the_product_is_atens():
    a, b = _layouts(4, 64, 200, 200)["contiguous"]
    with torch.backends.mkldnn.flags(enabled=False):
        assert torch.equal(gemm.bmm(a, b), torch.bmm(a, b))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_and_autocast_take_torch_bmm(dtype):
    a, b = (t.to(dtype) for t in _layouts(4, 64, 200, 200)["contiguous"])
    assert torch.equal(gemm.bmm(a, b), torch.bmm(a, b))
    a, b = _layouts(4, 64, 200, 200)["contiguous"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = gemm.bmm(a, b), torch.bmm(a, b)
    assert got.dtype == want.dtype == torch.bfloat16 and torch.equal(got, want)


@needs_kernel
def test_the_op_checks_its_shapes():
    with pytest.raises(ValueError, match=r"Invalid value for argument 'a, b': expected tensors of shapes \(G, M, K\)"):
        torch.ops.embdrop.bmm(torch.randn(2, 3, 4), torch.randn(2, 5, 6))


def test_without_the_kernel_it_is_torch_bmm(monkeypatch):
    from embdrop.kernels import build

    monkeypatch.setattr(build, "available", lambda: False)
    a, b = _layouts(4, 8, 16, 16)["contiguous"]
    assert torch.equal(gemm.bmm(a, b), torch.bmm(a, b))


def _torch_gate_inputs(x, m, scale):
    return x.transpose(0, 1).unsqueeze(0) * (m * scale).unsqueeze(1)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 3, 5, 7), (4, 64, 35, 200), (3, 2, 40, 650)])  # (G, B, T, C)
def test_gate_inputs_are_torch_s_masked_copies_bit_for_bit_forward_and_backward(shape, dtype):
    G, B, T, C = shape
    g = torch.Generator().manual_seed(G * B + T)
    x = torch.randn(B, T, C, generator=g, dtype=dtype, requires_grad=True)
    m = torch.rand(G, B, C, generator=g, dtype=dtype).lt(0.5).to(dtype)
    got = gemm.gate_inputs(x, m, 2.0)
    want = _torch_gate_inputs(x, m, 2.0)
    assert got.shape == (G, T, B, C) and torch.equal(got, want)
    d = torch.randn(G, T, B, C, generator=g, dtype=dtype)
    (gx,) = torch.autograd.grad(got, x, d)
    (wx,) = torch.autograd.grad(want, x, d)
    # the same terms summed over the gates in order; torch's reduction may order them otherwise
    assert torch.allclose(gx, wx, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)


@needs_kernel
def test_gate_inputs_take_strided_inputs_and_leave_a_mask_that_needs_a_gradient_to_torch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 5, 6, generator=g).transpose(0, 1)  # (5, 7, 6), not contiguous
    m = torch.rand(4, 5, 6, generator=g, requires_grad=True)
    got = gemm.gate_inputs(x, m, 1.5)
    assert torch.equal(got, _torch_gate_inputs(x, m, 1.5)) and got.requires_grad  # the mask's gradient: torch's ops
    (gm,) = torch.autograd.grad(got.sum(), m)
    assert torch.allclose(gm, (x.sum(1) * 1.5).unsqueeze(0).expand(4, 5, 6))


@needs_kernel
def test_the_gate_inputs_op_names_a_shape_it_cannot_take():
    with pytest.raises(RuntimeError, match=r"m must be \(G, B, C\)"):
        gemm._gate_inputs(torch.zeros(2, 3, 4), torch.zeros(4, 3, 5), 1.0)


def _dense_projection(x, m, scale, w):
    """(G, T * B, H): each gate's masked copy times its weights, in float64."""
    G, (B, T, C) = m.shape[0], x.shape
    xm = x.double().transpose(0, 1).unsqueeze(0) * (m.double() * scale).unsqueeze(1)  # (G, T, B, C)
    return xm.reshape(G, T * B, C) @ w.double().view(G, w.shape[0] // G, C).transpose(1, 2)


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(
    G=st.sampled_from([1, 3, 4]),
    B=st.integers(0, 9),
    T=st.integers(0, 40),
    C=st.integers(0, 70),
    H=st.integers(0, 45),
    p=st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_masked_projection_equals_the_dense_product_of_the_masked_copies(G, B, T, C, H, p, seed):
    # every row-block height 1..kMR and panel width (H below, at and past a vector), sequences longer than the rows
    # packed at a time (T > 8 * kMR on AVX2), sequences that keep no channel (p = 1) or all (p = 0)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g)
    w = torch.randn(G * H, C, generator=g)
    m = (torch.rand(G, B, C, generator=g) >= p).float()
    with torch.no_grad():
        got = gemm.masked_projection(x, m, 2.0, w)
    want = _dense_projection(x, m, 2.0, w)
    assert got.shape == (G, T * B, H) and got.dtype == torch.float32
    # float32 sums of at most C terms: the dense product's own error bound
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-5 * max(C, 1) ** 0.5)


@needs_kernel
def test_masked_projection_takes_any_mask_value_and_long_sequences():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 230, 33, generator=g)  # 230 steps: several packs of rows on AVX-512 and AVX2
    w = torch.randn(4 * 70, 33, generator=g)
    m = torch.rand(4, 3, 33, generator=g) * (torch.rand(4, 3, 33, generator=g) > 0.4)  # not only 0 and 1
    with torch.no_grad():
        got = gemm.masked_projection(x, m, 1.25, w)
    assert torch.allclose(got.double(), _dense_projection(x, m, 1.25, w), rtol=1e-5, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("where", ["x", "w"])
def test_masked_projection_gives_nan_where_the_dense_product_does(where):
    # a dropped inf or nan still makes torch's product nan (x * 0); skipping it would hide it
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 20, 6, generator=g), torch.randn(4 * 5, 6, generator=g)
    m = torch.ones(4, 2, 6)
    m[:, 0, 2] = 0  # channel 2 dropped for sequence 0 in every gate
    if where == "x":
        x[0, 3, 2] = float("inf")
    else:
        w[7, 2] = float("nan")
    with torch.no_grad():
        got = gemm.masked_projection(x, m, 2.0, w)
        want = gemm.bmm(gemm.gate_inputs(x, m, 2.0).reshape(4, 40, 6), w.view(4, 5, 6).transpose(1, 2))
    assert want.isnan().any()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    finite = want.isfinite()
    assert torch.allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


@needs_kernel
def test_masked_projection_declines_what_it_has_no_backward_or_dtype_for():
    x, m, w = torch.randn(2, 3, 4), torch.ones(4, 2, 4), torch.randn(8, 4)
    assert gemm.masked_projection(x.requires_grad_(), m, 1.0, w) is None  # a gradient needed: the dense product
    assert gemm.masked_projection(x.detach(), m, 1.0, w.requires_grad_()) is None
    with torch.no_grad():
        assert gemm.masked_projection(x, m, 1.0, w) is not None
        assert gemm.masked_projection(x.double(), m.double(), 1.0, w.double()) is None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert gemm.masked_projection(x, m, 1.0, w) is None


@needs_kernel
def test_the_masked_projection_op_names_a_shape_it_cannot_take():
    from embdrop.kernels import build

    with pytest.raises(RuntimeError, match=r"m must be \(G, B, C\) and w \(G \* H, C\)"):
        build.extension().masked_projection(torch.zeros(2, 3, 4), torch.zeros(4, 2, 4), 1.0, torch.zeros(9, 4))

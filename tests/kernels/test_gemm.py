import pytest
import torch

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

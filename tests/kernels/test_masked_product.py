"""The training step's input projection without the dropped channels (gemm.masked_product): the dense path's
values, to the bit, forward and backward (the input's gradient too, csrc/input_grad.cpp) wherever the kernel takes
it, the dense path wherever it does not."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embdrop.kernels import gemm
from step_support import training_step


@pytest.fixture
def ext(fused_kernel):
    e = fused_kernel.extension()
    yield e
    e.set_masked_products(True)


def _operands(G, B, T, C, H, p, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g, requires_grad=True)
    w = torch.randn(G * H, C, generator=g, requires_grad=True)
    m = (torch.rand(G, B, C, generator=g) >= p).float()
    return x, w, m, torch.randn(G, T * B, H, generator=g)


def _dense(x, w, m, scale):
    """What the layer computes without the masked product: gate_inputs, then the kernel's bmm."""
    G, (B, T, C) = m.shape[0], x.shape
    xm = gemm.gate_inputs(x, m, scale).reshape(G, T * B, C)
    return gemm.bmm(xm, w.view(G, -1, C).transpose(1, 2))


def _masked(x, w, m, scale):
    return gemm.masked_product(x, m, scale, w)


def _with_grads(f, x, w, m, dy):
    x.grad = w.grad = None
    y = f(x, w, m, 2.0)
    if y is None:
        return None
    (y * dy).sum().backward()
    return y.detach(), x.grad, w.grad


@settings(max_examples=40, deadline=None)
@given(
    G=st.sampled_from([3, 4]),
    B=st.integers(1, 40),
    T=st.integers(1, 40),
    C=st.sampled_from([1, 7, 16, 33, 200, 513, 650]),
    H=st.integers(1, 70),
    p=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_masked_product_is_the_dense_one_to_the_bit_wherever_it_runs(fused_kernel, G, B, T, C, H, p, seed):
    # C = 513 and 650: oneDNN's second block of K (each block a chain of its own); p = 1: a gate that keeps nothing
    x, w, m, dy = _operands(G, B, T, C, H, p, seed)
    want = _with_grads(_dense, x, w, m, dy)
    got = _with_grads(_masked, x, w, m, dy)
    if got is None:  # this CPU's library sums this shape otherwise: the layer keeps the dense product
        e = fused_kernel.extension()
        own_grad = torch.get_num_threads() <= B and e.masked_input_grad_exact(G, T * B, H, C)
        assert not e.masked_projection_exact(G, T * B, C, H) and not own_grad
        return
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))


def test_the_masked_product_equals_the_dense_one_at_a_training_shape(ext):
    x, w, m, dy = _operands(4, 64, 35, 200, 200, 0.5, 0)
    if not ext.masked_projection_exact(4, 64 * 35, 200, 200) or not ext.masked_input_grad_exact(4, 2240, 200, 200):
        pytest.skip("this CPU's library sums (4, 2240, 200) x (4, 200, 200) otherwise: the dense product runs")
    want, got = _with_grads(_dense, x, w, m, dy), _with_grads(_masked, x, w, m, dy)
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))


@pytest.mark.parametrize("where", ["x", "w"])
def test_the_masked_product_keeps_the_dense_product_s_nan_and_inf(fused_kernel, where):
    # a dropped inf or nan makes the dense product nan (x * 0): the kernel then runs the dense product itself
    x, w, m, dy = _operands(4, 8, 20, 16, 12, 0.5, 3)
    m[:, 0, 2] = 0  # channel 2 dropped for sequence 0 in every gate
    with torch.no_grad():
        if where == "x":
            x[0, 3, 2] = float("inf")
        else:
            w[7, 2] = float("nan")
    want, got = _with_grads(_dense, x, w, m, dy), _with_grads(_masked, x, w, m, dy)
    if got is None:
        pytest.skip("this CPU's library sums this product otherwise: the dense product runs")
    assert want[0].isnan().any()
    # the same values to the bit, nan where nan and inf where inf
    assert all(torch.allclose(a, b, rtol=0, atol=0, equal_nan=True) for a, b in zip(want, got, strict=True))


def test_masked_projection_sums_three_blocks_of_k(fused_kernel):
    # C = 1100: three of oneDNN's blocks of 512 channels, the first of them all dropped for one sequence
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(3, 20, 1100, generator=g), torch.randn(4 * 24, 1100, generator=g)
    m = (torch.rand(4, 3, 1100, generator=g) > 0.5).float()
    m[:, 1, :512] = 0
    with torch.no_grad():
        got = gemm.masked_projection(x, m, 2.0, w)
    xm = x.double().transpose(0, 1).unsqueeze(0) * (m.double() * 2.0).unsqueeze(1)  # (G, T, B, C)
    want = xm.reshape(4, 60, 1100) @ w.double().view(4, 24, 1100).transpose(1, 2)
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-4)


def test_the_masked_product_declines_what_would_change_the_numbers(ext):
    x, w, m, _ = _operands(4, 2, 20, 8, 5, 0.5, 1)
    own_grad = torch.get_num_threads() <= 2 and ext.masked_input_grad_exact(4, 40, 5, 8)  # B = 2 sequences
    exact = ext.masked_projection_exact(4, 40, 8, 5) or own_grad
    assert (gemm.masked_product(x, m, 2.0, w) is not None) == exact
    assert gemm.masked_product(x.double(), m.double(), 2.0, w.double()) is None
    assert gemm.masked_product(x, m.requires_grad_(), 2.0, w) is None  # a mask with a gradient
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gemm.masked_product(x, m.detach(), 2.0, w) is None
    # a check past 2^25 floats of its own (here 16 GiB) is not made: the dense product runs
    assert not ext.masked_projection_exact(4, 2**20, 256, 256)
    assert not ext.masked_input_grad_exact(4, 2**20, 256, 256)
    ext.set_masked_products(False)
    assert not ext.masked_projection_exact(4, 40, 8, 5) and not ext.masked_input_grad_exact(4, 40, 5, 8)
    assert gemm.masked_product(x, m.detach(), 2.0, w) is None


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("kw", [dict(dropout=0.5, recurrent_dropout=0.5), dict(dropout=0.4, recurrent_dropout=0.1)])
@pytest.mark.parametrize("lengths", [False, True])
def test_a_training_step_is_the_same_with_the_masked_product_on_and_off(ext, monkeypatch, kind, kw, lengths):
    B, T, C, H = 12, 20, 40, 24  # T >= 16 and B * T >= 128: the layer takes the product without dropped channels
    if not ext.masked_projection_exact({"LSTM": 4, "GRU": 3}[kind], B * T, C, H):
        pytest.skip("this CPU's library sums this product otherwise: the layer keeps the dense one")
    ran, grads = [], []
    product, input_grad = gemm.masked_product, ext.masked_input_grad
    monkeypatch.setattr(gemm, "masked_product", lambda *a: ran.append(product(*a)) or ran[-1])
    monkeypatch.setattr(ext, "masked_input_grad", lambda *a: grads.append(input_grad(*a)) or grads[-1])
    ext.set_masked_products(False)
    dense = training_step(kind, kw, B, T, C, H, lengths)
    assert ran and ran[-1] is None and not grads
    ext.set_masked_products(True)
    masked = training_step(kind, kw, B, T, C, H, lengths)
    assert ran[-1] is not None  # the step took it
    assert grads or not ext.masked_input_grad_exact(len(ran[-1]), B * T, H, C)  # and its input gradient
    assert all(torch.equal(a, b) for a, b in zip(dense, masked, strict=True))


def _dense_input_grad(ext, g, w, m, scale, T):
    """The input's gradient as the dense path makes it: bmm's gradient for xm, then gate_inputs'."""
    G, M, _ = g.shape
    C = w.shape[1]
    return ext.gate_inputs_backward(gemm.bmm(g, w.view(G, -1, C)).view(G, T, M // T, C), m, scale)


def input_grads_match_dense(ext, cases):
    """For each (G, B, T, C, H, p, seed): the own input gradient equals the dense one's values wherever the check
    says it may run (the signs of zeros aside: a channel every gate drops is +0 here, either sign there)."""
    ran = 0
    for G, B, T, C, H, p, seed in cases:
        g = torch.Generator().manual_seed(seed)
        dy, w = torch.randn(G, T * B, H, generator=g), torch.randn(G * H, C, generator=g)
        m = (torch.rand(G, B, C, generator=g) >= p).float()
        got, want = ext.masked_input_grad(dy, w, m, 2.0, T), _dense_input_grad(ext, dy, w, m, 2.0, T)
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-3), (G, B, T, C, H, p)  # wherever it runs, the values
        if ext.masked_input_grad_exact(G, T * B, H, C):  # and where the layer takes it, the bits
            assert torch.equal(got, want), (G, B, T, C, H, p)
            ran += 1
    return ran


@settings(max_examples=40, deadline=None)
@given(
    G=st.sampled_from([3, 4]),
    B=st.integers(1, 12),
    T=st.integers(1, 70),
    C=st.integers(1, 40),
    H=st.sampled_from([1, 5, 16, 33, 200, 513, 650]),
    p=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_own_input_gradient_is_the_dense_one_wherever_it_runs(fused_kernel, G, B, T, C, H, p, seed):
    # T up to 70: several tiles of steps, a part vector; H = 513 and 650: two of oneDNN's blocks of the sum over h
    input_grads_match_dense(fused_kernel.extension(), [(G, B, T, C, H, p, seed)])


def test_the_own_input_gradient_runs_at_the_benchmark_shapes(ext):
    cases = [(4, 64, 35, 200, 200, 0.5, 0), (4, 32, 200, 64, 100, 0.5, 1), (3, 8, 35, 650, 650, 0.5, 2)]
    if input_grads_match_dense(ext, cases) < len(cases):
        pytest.skip("this CPU's library sums one of these products otherwise: the dense gradient runs there")


@pytest.mark.parametrize("where", ["g", "w"])
def test_the_own_input_gradient_leaves_nan_and_inf_to_the_dense_path(ext, where):
    g = torch.Generator().manual_seed(5)
    dy, w = torch.randn(4, 20 * 8, 12, generator=g), torch.randn(4 * 12, 16, generator=g)
    m = (torch.rand(4, 8, 16, generator=g) > 0.5).float()
    m[:, 3, 2] = 0  # channel 2 dropped for sequence 3 in every gate: the dense path makes it nan
    if where == "g":
        dy[1, 5 * 8 + 3, 4] = float("inf")
    else:
        w[7, 2] = float("nan")
    assert ext.masked_input_grad(dy, w, m, 2.0, 20) is None
    x = torch.randn(8, 20, 16, requires_grad=True)
    if ext.masked_input_grad_exact(4, 160, 12, 16):  # the layer's op then falls back to the dense path's nan
        out = gemm.masked_product(x, m, 2.0, w)
        (out * dy).sum().backward()
        assert torch.allclose(x.grad, _dense_input_grad(ext, dy, w, m, 2.0, 20), rtol=0, atol=0, equal_nan=True)
        assert x.grad[3, :, 2].isnan().any()


def test_fewer_sequences_than_threads_keep_the_dense_input_gradient(ext, monkeypatch):
    # the own gradient splits its work by sequence: 3 sequences on 4 threads would leave a thread idle
    calls = []
    input_grad = ext.masked_input_grad
    monkeypatch.setattr(ext, "masked_input_grad", lambda *a: calls.append(1) or input_grad(*a))
    x, w, m, dy = _operands(4, 3, 60, 40, 24, 0.5, 6)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        want = _with_grads(_dense, x, w, m, dy)
        got = _with_grads(_masked, x, w, m, dy)
    finally:
        torch.set_num_threads(threads)
    assert not calls
    if got is not None:  # the forward may still skip the dropped channels
        assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    torch.set_num_threads(1)
    try:
        x.grad = None
        _with_grads(_masked, x, w, m, dy)
    finally:
        torch.set_num_threads(threads)
    assert calls or not ext.masked_input_grad_exact(4, 180, 24, 40)  # one thread: three sequences are enough

"""The fused kernel's pool of large buffers (csrc/pool.cpp) and its size from EMBDROP_CPU_POOL_MB (build.py)."""

import pytest
import torch

from embdrop.kernels import build
from embdrop.kernels import recurrence as fused

needs_kernel = pytest.mark.usefixtures("fused_kernel")


@needs_kernel
def test_the_pool_reuses_the_large_buffers_and_changes_no_result(fused_kernel):
    ext = fused_kernel.extension()
    g = torch.Generator().manual_seed(5)
    G, T, B, H = 4, 50, 32, 256  # gates (T, G, B, H): 6.5 MB, above the 1 MiB from which buffers are pooled
    xw, w = torch.randn(G, T, B, H, generator=g).requires_grad_(), (torch.randn(G * H, H, generator=g) * 0.05)
    w.requires_grad_()
    rm, h0, c0 = torch.ones(G, B, H), torch.zeros(B, H), torch.zeros(B, H)

    def step():
        out, h, c = fused.lstm_recurrence(xw, w, rm, h0, c0)
        grads = torch.autograd.grad(out.square().sum(), [xw, w])
        return [t.clone() for t in (out, h, c, *grads)]

    try:
        ext.set_pool_cap_mb(1024)
        first = step()
        held = ext.pool_held_bytes()
        assert held >= T * G * B * H * 4  # the freed saved tensors went to the pool
        second = step()
        assert ext.pool_held_bytes() == held  # the second step took them and gave them back: nothing new
        ext.set_pool_cap_mb(0)  # off: what it held is released, and buffers come from malloc
        assert ext.pool_held_bytes() == 0
        third = step()
        assert ext.pool_held_bytes() == 0
    finally:
        ext.set_pool_cap_mb(1024)
    for a, b, c in zip(first, second, third, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@needs_kernel
@pytest.mark.parametrize("raw", ["abc", "-1", "1.5", str(2**41)])
def test_a_bad_pool_size_is_refused_before_the_kernel_loads(raw, monkeypatch):
    from embdrop._checks import UsageError

    monkeypatch.setenv("EMBDROP_CPU_POOL_MB", raw)
    saved = dict(build._state)
    build._state.clear()
    try:
        with pytest.raises(UsageError, match=r"argument 'EMBDROP_CPU_POOL_MB': expected a whole number of MiB"):
            build._load()
        assert "ext" not in build._state  # nothing half-set: the next call checks again
    finally:
        build._state.clear()
        build._state.update(saved)


@needs_kernel
def test_the_pool_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("EMBDROP_CPU_POOL_MB", " 0 ")
    saved = dict(build._state)
    build._state.clear()
    try:
        build._load()
        ext = build._state["ext"]
        xw = torch.randn(4, 50, 32, 256, requires_grad=True)  # saved gates (T, 4, B, H): 6.5 MB, a pooled size
        out, _, _ = fused.lstm_recurrence(xw, torch.randn(1024, 256) * 0.05, torch.ones(4, 32, 256),
                                          torch.zeros(32, 256), torch.zeros(32, 256))  # fmt: skip
        out.sum().backward()  # the saved buffers are freed here
        assert ext.pool_held_bytes() == 0  # the cap is 0: nothing kept
    finally:
        build._state.clear()
        build._state.update(saved)
        build.extension().set_pool_cap_mb(1024)

"""The training set-up's own pieces: the RMSprop the recipes use against torch's, to the bit."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embdrop.recipes.train_setup import RMSprop

TINY = 1e-38  # a float32 denormal: torch's sqrt is slowest on these


def _grads(shape, seed: int, zero_rows: float, scale: float) -> list[torch.Tensor]:
    """Gradients as an embedding gets them: rows of zeros (words not in the batch), the rest of any size down to
    denormals, so that the running average holds zeros, denormals and small normals."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(6):
        g = torch.randn(shape, generator=gen) * scale
        g[torch.rand(shape[0], generator=gen) < zero_rows] = 0.0
        g.view(-1)[:3] = torch.tensor([TINY, -TINY, 1e-20])[: g.numel()]
        out.append(g)
    return out


def _run(opt_cls, grads, w_scale=1.0, **kw):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(grads[0].shape) * w_scale)
    opt = opt_cls([w], **kw)
    for g in grads:
        w.grad = g.clone()
        opt.step()
    return w.detach(), opt.state[w]


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
    zero_rows=st.sampled_from([0.0, 0.5, 0.95]),
    scale=st.sampled_from([1.0, 1e-12, 1e-19, 1e-25]),
    eps=st.sampled_from([1e-7, 1e-8, 1e-11]),
    wd=st.sampled_from([0.0, 0.01]),
    w_scale=st.sampled_from([1.0, 1e-12]),
)
def test_the_same_update_as_torch_to_the_bit(rows, cols, seed, zero_rows, scale, eps, wd, w_scale):
    # weights as small as the updates of tiny gradients, so that an update a few ulps off would show
    grads = _grads((rows, cols), seed, zero_rows, scale)
    kw = dict(lr=1e-3, alpha=0.9, eps=eps, weight_decay=wd, w_scale=w_scale)
    ours, ours_state = _run(RMSprop, grads, **kw)
    theirs, their_state = _run(torch.optim.RMSprop, grads, **kw)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_state["square_avg"], their_state["square_avg"])
    assert ours_state["step"] == their_state["step"] == len(grads)


def test_the_floor_is_taken_and_other_settings_are_torchs_own_step(monkeypatch):
    grads = _grads((20, 4), 3, 0.5, 1e-19)
    calls = []
    real = torch.Tensor.clamp_min
    monkeypatch.setattr(torch.Tensor, "clamp_min", lambda t, v: calls.append(v) or real(t, v))
    _run(RMSprop, grads, lr=1e-3, alpha=0.9, eps=1e-7)
    assert len(calls) == len(grads) and calls[0] == pytest.approx((1e-7 * 2.0**-26) ** 2)
    for kw in (dict(momentum=0.9), dict(centered=True), dict(eps=1e-13)):
        calls.clear()
        ours, _ = _run(RMSprop, grads, lr=1e-3, alpha=0.9, **kw)
        theirs, _ = _run(torch.optim.RMSprop, grads, lr=1e-3, alpha=0.9, **kw)
        assert calls == [] and torch.equal(ours, theirs)


def test_state_dicts_go_both_ways():
    grads = _grads((12, 5), 9, 0.5, 1.0)
    w1 = torch.nn.Parameter(torch.randn(12, 5))
    w2 = torch.nn.Parameter(w1.detach().clone())
    theirs, ours = torch.optim.RMSprop([w1], lr=1e-2, alpha=0.9, eps=1e-7), RMSprop([w2], lr=1e-2, alpha=0.9, eps=1e-7)
    for g in grads[:3]:
        w1.grad = g.clone()
        theirs.step()
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # resumed from a checkpoint torch's optimizer wrote
    w2.data.copy_(w1.detach())
    for g in grads[3:]:
        w1.grad, w2.grad = g.clone(), g.clone()
        theirs.step()
        ours.step()
    assert torch.equal(w1, w2)
    assert ours.state_dict()["state"][0]["step"] == theirs.state_dict()["state"][0]["step"] == 6

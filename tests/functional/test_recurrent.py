"""functional.recurrent.run's ``out_shift``: the CPU kernel writes a pre-padded batch's output rotated back, which must
be what a roll after it gives, forward and backward."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embdrop import _checks
from embdrop.functional import recurrent as dispatch
from embdrop.functional.steps import roll
from embdrop.kernels import recurrence

RATES = {"recurrent dropout": dict(dropout=0.5, recurrent_dropout=0.5), "zoneout": dict(zoneout=0.2), "none": {}}


def _call(cell, rates, B, T, C, H, seed, shift, head):
    g = torch.Generator().manual_seed(seed)
    G = dispatch.GATES[cell]
    x = torch.randn(B, T, C, generator=g, dtype=torch.float64).requires_grad_()
    w = [torch.randn(*s, generator=g, dtype=torch.float64).mul_(0.3).requires_grad_()
         for s in ((G * H, C), (G * H, H), (G * H,), (G * H,))]  # fmt: skip
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64)
    c0 = torch.randn(B, H, generator=g, dtype=torch.float64) if cell == "lstm" else None
    n = torch.randint(1, T + 1, (B,), generator=g)  # post-padded, as the layer hands rows to run
    keep = lambda *s: (torch.rand(*s, generator=g) < 0.6).double()  # noqa: E731
    masks = dispatch.RecurrentMasks(
        input=[[keep(G, B, C) if "dropout" in rates else None]],
        recurrent=[[keep(G, B, H) if "recurrent_dropout" in rates else None]],
        weight=[[None]],
        zoneout_h=[[keep(B, T, H) if "zoneout" in rates else None]],
        zoneout_c=[[keep(B, T, H) if "zoneout" in rates and cell == "lstm" else None]],
    )
    opts = dispatch.Options(cell, **rates)
    out, h, _ = dispatch.run(x, h0, c0, tuple(w), masks, (0, 0), opts, n, shift)
    if shift is None:
        out = roll(out, -rolls_of(B, T, seed))
    loss = (h * torch.randn(B, H, generator=g, dtype=torch.float64)).sum()
    if head == "output":
        loss = loss + (out * torch.randn(B, T, H, generator=g, dtype=torch.float64)).sum()
    loss.backward()
    return [out.detach(), h.detach(), x.grad] + [p.grad for p in w]


def rolls_of(B, T, seed):
    return torch.randint(0, T, (B,), generator=torch.Generator().manual_seed(seed + 1))


@pytest.mark.usefixtures("fused_kernel")
@settings(max_examples=40, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    rates=st.sampled_from(sorted(RATES)),
    B=st.integers(1, 9),
    T=st.integers(1, 7),
    H=st.integers(1, 20),
    seed=st.integers(0, 99),
    head=st.sampled_from(["output", "final state only"]),
)
def test_the_kernels_rotated_output_is_a_roll_after_it(cell, rates, B, T, H, seed, head):
    kw = RATES[rates]
    rotated = _call(cell, kw, B, T, 3, H, seed, rolls_of(B, T, seed), head)
    rolled = _call(cell, kw, B, T, 3, H, seed, None, head)
    assert all(torch.equal(a, b) for a, b in zip(rotated, rolled, strict=True))


@pytest.mark.usefixtures("fused_kernel")
@pytest.mark.parametrize("bad", [[0, 4], [-1, 0]])
def test_a_rotation_outside_the_steps_is_refused(bad):
    T, B, H = 4, 2, 3
    xw, w = torch.zeros(4, T, B, H), torch.zeros(4 * H, H)
    with pytest.raises(ValueError, match="oshift"):
        recurrence.lstm_recurrence(xw, w, torch.ones(4, B, H), torch.zeros(B, H), torch.zeros(B, H),
                                   out_shift=torch.tensor(bad))  # fmt: skip
    assert not _checks.tracing()

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embdrop.layers import _padding


@st.composite
def batches(draw):
    B, T, C = draw(st.integers(1, 5)), draw(st.integers(1, 7)), draw(st.integers(0, 4))
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))), dtype=torch.float64)
    shift = torch.tensor([draw(st.integers(-T + 1, T - 1)) for _ in range(B)])
    n = torch.tensor([draw(st.integers(1, T)) for _ in range(B)])
    return x, shift, n


@settings(max_examples=60, deadline=None)
@given(batches())
def test_roll_rotates_each_row_left_by_its_shift_and_passes_the_gradient_back(case):
    x, shift, _ = case
    x = x.requires_grad_()
    out = _padding.roll(x, shift)
    expected = torch.stack([torch.roll(x[b], -int(shift[b]), dims=0) for b in range(x.shape[0])])
    assert torch.equal(out, expected)
    g = torch.randn_like(out)
    out.backward(g)
    back = torch.stack([torch.roll(g[b], int(shift[b]), dims=0) for b in range(x.shape[0])])
    assert torch.equal(x.grad, back)  # a permutation of the rows: its gradient is the inverse permutation, exactly


@settings(max_examples=60, deadline=None)
@given(batches())
def test_reverse_flips_each_row_within_its_length_and_leaves_the_padding(case):
    x, _, n = case
    out = _padding.reverse(x, n)
    for b in range(x.shape[0]):
        k = int(n[b])
        assert torch.equal(out[b, :k], x[b, :k].flip(0))
        assert torch.equal(out[b, k:], x[b, k:])
    assert torch.equal(_padding.reverse(x, None), x.flip(1))


@settings(max_examples=60, deadline=None)
@given(batches())
def test_a_time_major_array_seen_batch_first_gives_the_same_rows_and_gradient(case):
    # a recurrent layer's output is a (T, B, C) array transposed: roll and reverse gather from it directly
    x, shift, n = case
    for op, arg in ((_padding.roll, shift), (_padding.reverse, n)):
        flat = x.detach().clone().requires_grad_()
        time_major = x.detach().transpose(0, 1).contiguous().requires_grad_()  # (T, B, C)
        out, out_tm = op(flat, arg), op(time_major.transpose(0, 1), arg)
        assert out_tm.is_contiguous() and torch.equal(out_tm, out)
        g = torch.randn_like(out)
        out.backward(g)
        out_tm.backward(g)
        assert torch.equal(time_major.grad, flat.grad.transpose(0, 1))

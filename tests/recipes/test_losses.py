import pytest
import torch
import torch.nn.functional as F

from embdrop.recipes.losses import keep_freed_memory, linear_cross_entropy


def _inputs(bias=True, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(7, 5, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(7, generator=g, dtype=dtype, requires_grad=True) if bias else None
    y = torch.randint(0, 7, (12,), generator=g)
    return x, w, b, y


@pytest.mark.parametrize("bias", [True, False])
def test_equals_linear_then_cross_entropy_in_value_and_gradients(bias):
    x, w, b, y = _inputs(bias)
    ours = linear_cross_entropy(x, w, b, y)
    grads = torch.autograd.grad(3.0 * ours, [t for t in (x, w, b) if t is not None])
    ref = F.cross_entropy(F.linear(x, w, b), y)
    expected = torch.autograd.grad(3.0 * ref, [t for t in (x, w, b) if t is not None])
    torch.testing.assert_close(ours, ref)
    for a, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, e)


def test_large_logits_stay_finite():
    x, w, b, y = _inputs(dtype=torch.float32)
    loss = linear_cross_entropy(x.detach() * 1e4, w, b, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(w.grad).all()


def test_second_backward_through_the_same_graph_raises():
    x, w, b, y = _inputs()
    loss = linear_cross_entropy(x, w, b, y)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()


def test_bad_target_names_the_argument():
    x, w, b, y = _inputs()
    with pytest.raises(ValueError, match="'target'.*Received"):
        linear_cross_entropy(x, w, b, y[:-1])
    with pytest.raises(ValueError, match="'target'.*torch.long"):
        linear_cross_entropy(x, w, b, y.float())


def test_keep_freed_memory_sets_glibc_or_says_it_did_not():
    import sys

    assert keep_freed_memory() is sys.platform.startswith("linux")


def test_under_autocast_the_products_run_in_bfloat16_and_the_gradients_keep_the_inputs_dtype():
    x, w, b, y = (t.detach().float().requires_grad_() if t.is_floating_point() else t for t in _inputs())
    ref = F.cross_entropy(F.linear(x, w, b), y)
    expected = torch.autograd.grad(ref, [x, w, b])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(x, w, b, y)
    grads = torch.autograd.grad(ours, [x, w, b])
    assert ours.dtype == torch.float32 and ours != ref  # rounded products, float32 loss
    assert abs(ours.item() - ref.item()) < 0.02 * ref.item()
    for a, e in zip(grads, expected, strict=True):
        assert a.dtype == torch.float32
        assert (a - e).norm() < 0.03 * e.norm()


def test_a_bfloat16_input_still_gets_a_float32_softmax_and_loss():
    x, w, b, y = (t.detach().float().requires_grad_() if t.is_floating_point() else t for t in _inputs())
    x16 = x.detach().bfloat16().requires_grad_()  # what torch.lstm hands on under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(x16, w, b, y)
    ref = F.cross_entropy(F.linear(x16.float(), w, b), y)
    assert ours.dtype == torch.float32 and abs(ours.item() - ref.item()) < 0.02 * ref.item()
    dx, dw = torch.autograd.grad(ours, [x16, w])
    assert dx.dtype == torch.bfloat16 and dw.dtype == torch.float32

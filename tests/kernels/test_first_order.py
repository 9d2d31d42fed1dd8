"""Second derivatives through the kernels: the recurrences' (kernels/first_order.py) raise one clear error where
their first derivatives would carry no graph or would drop their terms from a gradient penalty, change nothing where
create_graph is asked for and nothing differentiates them, and the reference loop the message points to gives them;
the linear ops (embedding dropout, weight drop's mask, the per-gate input masks) give them themselves."""

import pytest
import torch

import embdrop
from embdrop.kernels import build


def gen(seed):
    return torch.Generator().manual_seed(seed)


RAISES = "first derivatives only.*EMBDROP_KERNEL=reference"


def _graphed_gradient_is_the_plain_one(f, x):
    """The gradient with a graph (an incoming gradient that needs one: the differentiable path) has the values of
    the kernel's, which gradgradcheck alone would not see (it differentiates whatever that path computes)."""
    out = f(x)
    v = torch.randn(out.shape, dtype=out.dtype, generator=gen(12))
    plain = torch.autograd.grad(f(x), x, v)[0]
    graphed = torch.autograd.grad(f(x), x, v.requires_grad_(), create_graph=True)[0]
    assert graphed.requires_grad
    assert torch.allclose(graphed.to_dense(), plain.to_dense(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("kw", [dict(dropout=0.5, recurrent_dropout=0.5), dict(zoneout=0.2)])
def test_a_gradient_penalty_through_the_kernel_raises_one_clear_error(fused_kernel, kind, kw):
    layer = getattr(embdrop, kind)(6, 5, **kw)
    x = torch.randn(3, 7, 6, generator=gen(0), requires_grad=True)
    (gx,) = torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=RAISES):
        gx.pow(2).sum().backward()


def test_a_penalty_mixing_kernel_gradients_with_others_raises_rather_than_dropping_them(fused_kernel):
    # the head's gradients carry a graph of their own: without the mark, backward ran and left the LSTM's terms out
    layer, head = embdrop.LSTM(6, 5, dropout=0.5, recurrent_dropout=0.5), torch.nn.Linear(5, 1)
    x = torch.randn(3, 7, 6, generator=gen(1))
    loss = head(layer(x)[0]).sum()
    grads = torch.autograd.grad(loss, [*layer.parameters(), *head.parameters()], create_graph=True)
    penalty = sum(g.pow(2).sum() for g in grads)
    with pytest.raises(RuntimeError, match=RAISES):
        (loss + penalty).backward()


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_dropout_gives_its_second_derivative(fused_kernel, sparse):
    # linear in the weight: its backward is linear in the incoming gradient, which a penalty differentiates
    from embdrop.functional import embedding

    ids = torch.tensor([[1, 2, 0, 2], [3, 1, 1, 6]])  # 0: padding, 1 and 2 twice
    mask = (torch.rand(2, 4, generator=gen(7)) > 0.5).double()

    def hashed(w):  # the mask drawn as a key and computed in the kernel (csrc/module.cpp's node)
        return embedding(ids, w, p=0.5, padding_idx=0, sparse=sparse, generator=gen(8)).to_dense()

    def scaled(w):  # a given mask (kernels/embedding.py's op)
        return embedding(ids, w, p=0.5, padding_idx=0, sparse=sparse, mask=mask)

    w = torch.randn(7, 3, dtype=torch.float64, generator=gen(9), requires_grad=True)
    for f in (hashed, scaled):
        dw = torch.autograd.grad(f(w).pow(2).sum(), w, create_graph=True)[0].to_dense()
        assert dw.requires_grad and not dw[0].any()  # a graph, and no gradient for the padding row
        _graphed_gradient_is_the_plain_one(f, w)
        if not sparse:
            assert torch.autograd.gradgradcheck(f, (w,))


def test_weight_drop_and_the_gate_inputs_give_their_second_derivative(fused_kernel):
    from embdrop.kernels import gemm, hashed

    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen(10), requires_grad=True)
    key = torch.tensor(12345)
    m = (torch.rand(4, 2, 3, generator=gen(11)) > 0.5).double()
    for f in (lambda t: hashed.hashed_scale(t, key, 2**31, 2.0), lambda t: gemm.gate_inputs(t, m, 2.0)):
        assert torch.autograd.gradgradcheck(f, (x,))
        _graphed_gradient_is_the_plain_one(f, x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_create_graph_alone_changes_no_gradient(fused_kernel, kind):
    layer = getattr(embdrop, kind)(6, 5, dropout=0.5, recurrent_dropout=0.5)
    x = torch.randn(3, 7, 6, generator=gen(3), requires_grad=True)
    masks = layer.sample_masks(x, generator=gen(4))
    wrt = [x, *layer.parameters()]
    plain = torch.autograd.grad(layer(x, masks=masks)[0].pow(2).sum(), wrt)
    graphed = torch.autograd.grad(layer(x, masks=masks)[0].pow(2).sum(), wrt, create_graph=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, graphed, strict=True))
    assert all(g.requires_grad for g in graphed)  # each carries a graph: a penalty on it reaches the error


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_reference_loop_gives_the_second_derivative(monkeypatch, kind):
    monkeypatch.setattr(build, "available", lambda: False)  # what EMBDROP_KERNEL=reference chooses
    layer = getattr(embdrop, kind)(3, 4, dropout=0.3, recurrent_dropout=0.4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen(5), requires_grad=True)
    masks = layer.sample_masks(x, generator=gen(6))
    assert torch.autograd.gradgradcheck(lambda t: layer(t, masks=masks)[0], (x,))

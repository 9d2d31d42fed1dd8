import pytest
import torch
from torch import nn

from contract import check_layer_contract
from embdrop import DropConnect


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_layer_contract_linear():
    check_layer_contract(
        lambda: DropConnect(nn.Linear(4, 3), 0.5),
        lambda dt: (torch.randn(5, 4, generator=gen(1)).to(dt),),
        eval_reference=lambda layer, inputs: layer.module(inputs[0]),
    )


def test_layer_contract_lstm_weight_hh():
    check_layer_contract(
        lambda: DropConnect(nn.LSTM(4, 6, batch_first=True), 0.5, names=("weight_hh_l0",)),
        lambda dt: (torch.randn(2, 5, 4, generator=gen(1)).to(dt),),
        eval_reference=lambda layer, inputs: layer.module(inputs[0]),
    )


def test_gradient_reaches_raw_weight_through_the_mask():
    lin = nn.Linear(4, 3, bias=False)
    dc = DropConnect(lin, 0.4)
    x = torch.randn(7, 4)
    masks = dc.sample_masks(generator=gen(2))
    g_out = torch.randn(7, 3)
    (dc(x, masks=masks) * g_out).sum().backward()
    expected = (g_out.T @ x) * masks["weight"] / 0.6
    assert torch.allclose(lin.weight.grad, expected, atol=1e-6)
    assert isinstance(lin.weight, nn.Parameter)


def test_fresh_mask_each_training_forward_and_shared_by_the_batch():
    dc = DropConnect(nn.Linear(30, 30, bias=False), 0.5)
    x = torch.eye(30)  # row i of the output is column i of the dropped weight
    y1, y2 = dc(x), dc(x)
    assert not torch.equal(y1, y2)
    mask = dc.sample_masks(generator=gen(0))["weight"]
    y = dc(x, masks={"weight": mask})
    assert torch.allclose(y, (dc.module.weight * mask / 0.5).T)


def test_lstm_weight_drop_equals_lstm_with_masked_weight():
    lstm = nn.LSTM(3, 5, batch_first=True)
    dc = DropConnect(lstm, 0.3, names=("weight_hh_l0",))
    masks = dc.sample_masks(generator=gen(4))
    x = torch.randn(2, 6, 3)
    out, (h, c) = dc(x, masks=masks)
    ref = nn.LSTM(3, 5, batch_first=True)
    ref.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        ref.weight_hh_l0.mul_(masks["weight_hh_l0"] / 0.7)
    ref_out, (ref_h, ref_c) = ref(x)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(c, ref_c, atol=1e-6)


def test_state_dict_has_the_wrapped_module_keys_and_loads_both_ways():
    lin = nn.Linear(4, 3)
    dc = DropConnect(nn.Linear(4, 3), 0.5)
    assert list(dc.state_dict()) == list(lin.state_dict()) == ["weight", "bias"]
    dc.load_state_dict(lin.state_dict())
    assert torch.equal(dc.module.weight, lin.weight)
    lin2 = nn.Linear(4, 3)
    lin2.load_state_dict(dc.state_dict())
    assert torch.equal(lin2.bias, dc.module.bias)
    seq, plain = nn.Sequential(DropConnect(nn.Linear(4, 3), 0.5), nn.ReLU()), nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    assert list(seq.state_dict()) == list(plain.state_dict()) == ["0.weight", "0.bias"]
    seq.load_state_dict(plain.state_dict())
    seq.load_state_dict({"0.module.weight": lin.weight, "0.module.bias": lin.bias})  # the prefixed form is accepted
    assert torch.equal(seq[0].module.weight, lin.weight)


def test_wrapped_module_is_not_patched():
    lin = nn.Linear(4, 3)
    weight = lin.weight
    dc = DropConnect(lin, 0.5)
    dc(torch.randn(2, 4))
    assert lin.weight is weight and type(lin) is nn.Linear
    assert "forward" not in vars(lin) and [n for n, _ in lin.named_parameters()] == ["weight", "bias"]


def test_eval_and_p_zero_call_the_module_unchanged():
    lin = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    assert torch.equal(DropConnect(lin, 0.5).eval()(x), lin(x))
    state = torch.get_rng_state()
    assert torch.equal(DropConnect(lin, 0.0)(x), lin(x))
    assert torch.equal(torch.get_rng_state(), state)


def test_errors():
    with pytest.raises(
        ValueError,
        match=r"argument 'names': expected parameter names of Linear: \['bias', 'weight'\]"
        r"\. Received: names='weight_hh'",
    ):
        DropConnect(nn.Linear(2, 2), 0.5, names=("weight_hh",))
    with pytest.raises(ValueError, match=r"argument 'names': expected a non-empty tuple"):
        DropConnect(nn.Linear(2, 2), 0.5, names="weight")
    with pytest.raises(ValueError, match=r"argument 'p': expected a float in \[0, 1\)"):
        DropConnect(nn.Linear(2, 2), 1.0)
    with pytest.raises(ValueError, match=r"argument 'module': expected an nn.Module"):
        DropConnect(lambda x: x, 0.5)
    with pytest.raises(ValueError, match=r"argument 'masks': expected a mask of shape \(2, 2\)"):
        DropConnect(nn.Linear(2, 2), 0.5)(torch.randn(1, 2), masks={"weight": torch.ones(3)})


def test_gradcheck_float64_with_reseeded_generator():
    lin = nn.Linear(3, 2).double()
    dc = DropConnect(lin, 0.5)
    x = torch.randn(4, 3, dtype=torch.float64)

    def f(w):
        masks = dc.sample_masks(generator=gen(6))
        return torch.func.functional_call(dc, {"module.weight": w}, (x,), {"masks": masks})

    w = lin.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (w,))


def test_mask_drawn_in_the_call_equals_its_sampled_mask():
    dc = DropConnect(nn.Linear(6, 5), 0.3)
    x = torch.randn(4, 6, generator=gen(1))
    y1 = dc(x, generator=gen(3))
    y1.sum().backward()
    g1 = dc.module.weight.grad.clone()
    dc.zero_grad()
    y2 = dc(x, masks=dc.sample_masks(generator=gen(3)))
    y2.sum().backward()
    assert torch.equal(y1, y2) and torch.equal(g1, dc.module.weight.grad)

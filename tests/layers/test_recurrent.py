import math

import pytest
import torch
from torch import nn

import embdrop
from contract import check_layer_contract
from embdrop.kernels import build


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def torch_twin(layer):
    kind = {embdrop.LSTM: "LSTM", embdrop.GRU: "GRU", embdrop.SimpleRNN: "RNN"}[type(layer)]
    ref = getattr(nn, kind)(
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bidirectional=layer.bidirectional,
        bias=layer.bias,
        batch_first=True,
    )
    ref.load_state_dict(layer.state_dict())
    return ref.to(next(layer.parameters()).dtype)


def run_torch(ref, x, lengths):
    if lengths is None:
        return ref(x)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, st = ref(packed)
    return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], st


def ones_recurrent_masks(layer, x):
    """Masks of ones on the recurrent connections: the same maths as no dropout, but through the fused C++ path."""
    m = (
        layer.sample_masks(x)
        if layer._random
        else embdrop.RecurrentMasks(*[[[None] * layer.directions for _ in range(layer.num_layers)] for _ in range(5)])
    )
    m.recurrent = [
        [torch.ones(layer.gates, x.shape[0], layer.hidden_size, dtype=x.dtype) for _ in range(layer.directions)]
        for _ in range(layer.num_layers)
    ]
    return m


def flat(st):
    return list(st) if isinstance(st, tuple) else [st]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("path", ["fused", "kernel"])
def test_zero_dropout_equals_torch(kind, num_layers, bidirectional, use_lengths, path):
    torch.manual_seed(0)
    layer = getattr(embdrop, kind)(5, 7, num_layers=num_layers, bidirectional=bidirectional)
    ref = torch_twin(layer)
    x = torch.randn(4, 6, 5)
    lengths = torch.tensor([6, 3, 1, 5]) if use_lengths else None
    masks = ones_recurrent_masks(layer, x) if path == "kernel" else None
    out, st = layer(x, lengths=lengths, masks=masks)
    rout, rst = run_torch(ref, x, lengths)
    assert torch.allclose(out, rout, atol=1e-5)
    for a, b in zip(flat(st), flat(rst), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum() + sum(s.sum() for s in flat(st)), list(layer.parameters()))
    rgrads = torch.autograd.grad((rout * w).sum() + sum(s.sum() for s in flat(rst)), list(ref.parameters()))
    for a, b in zip(grads, rgrads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_kernel_equals_reference_given_the_same_masks(kind, bidirectional, monkeypatch):
    if not build.available():
        pytest.skip("the fused CPU kernel could not be built here: " + str(build._state.get("why")))
    torch.manual_seed(1)
    layer = getattr(embdrop, kind)(
        6, 8, num_layers=2, dropout=0.3, recurrent_dropout=0.4, weight_dropout=0.2, bidirectional=bidirectional
    )
    x = torch.randn(5, 9, 6, requires_grad=True)
    lengths = torch.tensor([9, 4, 1, 7, 9])
    masks = layer.sample_masks(x, generator=gen(3))
    h0 = torch.randn(2 * layer.directions, 5, 8, requires_grad=True)
    state = (h0, torch.randn_like(h0)) if kind == "LSTM" else h0

    def run():
        out, st = layer(x, state, lengths=lengths, masks=masks)
        w = torch.linspace(-1, 1, out.numel()).view_as(out)
        loss = (out * w).sum() + sum((s * s).sum() for s in flat(st))
        return [out, *flat(st), *torch.autograd.grad(loss, [x, h0, *layer.parameters()])]

    fast = run()
    monkeypatch.setattr(build, "available", lambda: False)
    slow = run()
    for a, b in zip(fast, slow, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_under_bfloat16_autocast_kernel_and_reference_agree_and_gradients_stay_float32(kind, monkeypatch):
    torch.manual_seed(2)
    layer = getattr(embdrop, kind)(6, 8, num_layers=2, dropout=0.3, recurrent_dropout=0.4)
    x = torch.randn(5, 9, 6)
    masks = layer.sample_masks(x, generator=gen(4))

    def run(autocast):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out, _ = layer(x, masks=masks)
        return [out, *torch.autograd.grad(out.square().sum(), list(layer.parameters()))]

    exact = run(False)
    mixed = run(True)
    assert all(t.dtype == torch.float32 for t in mixed)  # the state, the output and the gradients
    assert not torch.equal(mixed[0], exact[0])  # the products were rounded
    for m, e in zip(mixed, exact, strict=True):
        assert (m - e).norm() < 0.03 * e.norm()
    monkeypatch.setattr(build, "available", lambda: False)
    reference = run(True)  # the reference loop under autocast: torch's own mixed-precision matmuls
    for m, r in zip(mixed, reference, strict=True):
        assert (m - r).norm() < 0.03 * r.norm()


@pytest.mark.parametrize("variational", [True, False])
def test_lstm_under_bfloat16_autocast_runs_in_float32_where_onednn_has_no_bfloat16_lstm(variational, monkeypatch):
    # AVX2-only CPUs: nn.LSTM itself raises there under autocast ("could not create a primitive descriptor")
    monkeypatch.setattr(build, "onednn_supports", lambda dtype: dtype not in (torch.bfloat16, torch.float16))
    torch.manual_seed(3)
    layer = embdrop.LSTM(6, 8, num_layers=2, dropout=0.3, variational=variational)  # the torch.lstm path
    x = torch.randn(5, 9, 6)
    lengths = torch.tensor([9, 4, 1, 7, 9])
    masks = layer.sample_masks(x, generator=gen(0))
    for n in (None, lengths):
        exact = layer(x, lengths=n, masks=masks)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = layer(x.bfloat16(), lengths=n, masks=masks)  # an input from a bfloat16 op before it
        out, (h, c) = mixed
        assert out.dtype == h.dtype == c.dtype == torch.float32
        if n is None:  # torch.lstm in float32: x rounded to bfloat16 is the only difference
            ref = layer(x.bfloat16().float(), lengths=n, masks=masks)
            assert torch.equal(out, ref[0]) and torch.equal(h, ref[1][0])
        # with lengths the fused C++ kernel runs, its products in bfloat16 (as on any CPU)
        assert (out - exact[0]).norm() < 0.03 * exact[0].norm()


def test_onednn_support_query_answers_for_float32_and_bfloat16():
    assert build.onednn_supports(torch.float32) is True
    assert isinstance(build.onednn_supports(torch.bfloat16), bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # whatever this CPU is, the layer runs
        out, _ = embdrop.LSTM(4, 5)(torch.randn(2, 3, 4))
    assert torch.isfinite(out).all()


def keras_lstm_reference(layer, x, masks, p_in, p_rec):
    """Keras' LSTMCell, implementation 1, written out gate by gate in nn.LSTM's order (i, f, g, o)."""
    H = layer.hidden_size
    W, U, b = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0 + layer.bias_hh_l0
    mi, mr = masks.input[0][0] / (1 - p_in), masks.recurrent[0][0] / (1 - p_rec)
    h = c = x.new_zeros(x.shape[0], H)
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        pre = [
            (xt * mi[k]) @ W[k * H : (k + 1) * H].T + (h * mr[k]) @ U[k * H : (k + 1) * H].T + b[k * H : (k + 1) * H]
            for k in range(4)
        ]
        i, f, g, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2]), torch.sigmoid(pre[3])
        c = f * c + i * g  # the cell state is never masked
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def test_lstm_semantics_equal_a_hand_written_keras_cell():
    torch.manual_seed(2)
    layer = embdrop.LSTM(4, 6, dropout=0.3, recurrent_dropout=0.5)
    x = torch.randn(3, 5, 4)
    masks = layer.sample_masks(x, generator=gen(0))
    assert masks.input[0][0].shape == (4, 3, 4) and masks.recurrent[0][0].shape == (4, 3, 6)
    out, (h, c) = layer(x, masks=masks)
    rout, rh, rc = keras_lstm_reference(layer, x, masks, 0.3, 0.5)
    assert torch.allclose(out, rout, atol=1e-5) and torch.allclose(c[0], rc, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_mc_predictions_skip_the_dropped_inputs_products_and_equal_the_training_forward(kind, monkeypatch):
    # under no_grad, at a shape the rule in functional/recurrent.py sends there, the input projection runs without
    # the dropped channels' products (gemm.masked_projection); the outputs are those of the dense product with a
    # gradient, and of Keras' cell for the LSTM, up to float32 rounding
    from embdrop.kernels import gemm

    if not build.available():
        pytest.skip("the masked projection is the fused kernel's")
    taken = []
    real = gemm.masked_projection
    monkeypatch.setattr(gemm, "masked_projection", lambda *a: taken.append(real(*a)) or taken[-1])
    torch.manual_seed(4)
    layer = getattr(embdrop, kind)(40, 24, dropout=0.5, recurrent_dropout=0.5)
    x = torch.randn(16, 20, 40)
    masks = layer.sample_masks(x, generator=gen(2))
    dense, _ = layer(x, masks=masks)  # the weights need a gradient: the dense product
    assert taken == [None]
    with torch.no_grad():
        masked, state = layer(x, masks=masks)
    assert len(taken) == 2 and taken[1] is not None
    assert torch.allclose(masked, dense, atol=1e-5, rtol=1e-5)
    if kind == "LSTM":
        with torch.no_grad():
            rout, _, rc = keras_lstm_reference(layer, x, masks, 0.5, 0.5)
        assert torch.allclose(masked, rout, atol=1e-5) and torch.allclose(state[1][0], rc, atol=1e-5)


def test_gru_semantics_equal_a_hand_written_keras_cell():
    torch.manual_seed(3)
    layer = embdrop.GRU(4, 6, dropout=0.3, recurrent_dropout=0.5)
    x = torch.randn(3, 5, 4)
    m = layer.sample_masks(x, generator=gen(0))
    H = 6
    W, U, bi, bh = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0
    mi, mr = m.input[0][0] / 0.7, m.recurrent[0][0] / 0.5
    h = x.new_zeros(3, H)
    sl = lambda k: slice(k * H, (k + 1) * H)  # noqa: E731
    for t in range(5):
        xs = [(x[:, t] * mi[k]) @ W[sl(k)].T + bi[sl(k)] for k in range(3)]
        hs = [(h * mr[k]) @ U[sl(k)].T + bh[sl(k)] for k in range(3)]
        r, z = torch.sigmoid(xs[0] + hs[0]), torch.sigmoid(xs[1] + hs[1])
        n = torch.tanh(xs[2] + r * hs[2])
        h = z * h + (1 - z) * n  # the undropped h(t-1)
    out, hT = layer(x, masks=m)
    assert torch.allclose(hT[0], h, atol=1e-5) and torch.allclose(out[:, -1], h, atol=1e-5)


def test_gru_reset_before_equals_a_hand_written_keras_cell():
    """Keras' GRUCell(reset_after=False), implementation 1: the reset gate multiplies the (dropped) h(t-1) before
    the candidate's recurrent product."""
    torch.manual_seed(5)
    layer = embdrop.GRU(4, 6, dropout=0.3, recurrent_dropout=0.5, reset_after=False)
    assert "reset_after=False" in repr(layer)
    x = torch.randn(3, 5, 4)
    m = layer.sample_masks(x, generator=gen(0))
    H = 6
    W, U, bi, bh = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0
    mi, mr = m.input[0][0] / 0.7, m.recurrent[0][0] / 0.5
    h = x.new_zeros(3, H)
    sl = lambda k: slice(k * H, (k + 1) * H)  # noqa: E731
    for t in range(5):
        xs = [(x[:, t] * mi[k]) @ W[sl(k)].T + bi[sl(k)] for k in range(3)]
        r = torch.sigmoid(xs[0] + (h * mr[0]) @ U[sl(0)].T + bh[sl(0)])
        z = torch.sigmoid(xs[1] + (h * mr[1]) @ U[sl(1)].T + bh[sl(1)])
        n = torch.tanh(xs[2] + (r * h * mr[2]) @ U[sl(2)].T + bh[sl(2)])
        h = z * h + (1 - z) * n
    out, hT = layer(x, masks=m)
    assert torch.allclose(hT[0], h, atol=1e-5) and torch.allclose(out[:, -1], h, atol=1e-5)
    layer.eval()  # no masks: the same maths with every mask 1, and padded rows keep their state
    lengths = torch.tensor([5, 2, 1])
    out, hT = layer(x, lengths=lengths)
    for b, n_b in enumerate(lengths.tolist()):
        alone, h_b = layer(x[b : b + 1, :n_b])
        assert torch.allclose(hT[0, b], h_b[0, 0], atol=1e-6) and (out[b, n_b:] == 0).all()
    double = embdrop.GRU(3, 2, recurrent_dropout=0.4, reset_after=False).double()
    xd = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    md = double.sample_masks(xd, generator=gen(1))
    assert torch.autograd.gradcheck(lambda t: double(t, masks=md)[0], (xd,))


def test_dropout_only_is_one_mask_for_all_gates_fixed_across_T():
    torch.manual_seed(4)
    layer = embdrop.LSTM(5, 7, dropout=0.5)
    x = torch.randn(3, 6, 5)
    m = layer.sample_masks(x, generator=gen(1))
    assert m.input[0][0].shape == (1, 3, 5) and m.recurrent[0][0] is None
    ref = torch_twin(layer)
    out, _ = layer(x, masks=m)
    rout, _ = ref(x * m.input[0][0][0].unsqueeze(1) / 0.5)  # the same (B, 1, C) mask at every step
    assert torch.allclose(out, rout, atol=1e-6)


def test_per_gate_masks_are_independent_and_per_sample():
    layer = embdrop.LSTM(200, 300, dropout=0.5, recurrent_dropout=0.5)
    m = layer.sample_masks(torch.zeros(64, 2, 200), generator=gen(0))
    for masks in (m.input[0][0], m.recurrent[0][0]):
        G, B, C = masks.shape
        assert G == 4
        agree = (masks[0] == masks[1]).double().mean().item()  # independent halves agree half the time
        n = B * C
        assert abs(agree - 0.5) < 4 * math.sqrt(0.25 / n)
        assert not torch.equal(masks[:, 0], masks[:, 1])  # each sample its own


def test_naive_masks_are_new_at_every_step_and_need_no_recurrent_dropout():
    layer = embdrop.LSTM(8, 4, dropout=0.5, variational=False)
    x = torch.randn(2, 10, 8)
    m = layer.sample_masks(x, generator=gen(0))
    mi = m.input[0][0]
    assert mi.shape == (2, 10, 8) and m.recurrent[0][0] is None
    assert any(not torch.equal(mi[:, 0], mi[:, t]) for t in range(1, 10))
    ref = torch_twin(layer)
    out, _ = layer(x, masks=m)
    assert torch.allclose(out, ref(x * mi / 0.5)[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"argument 'recurrent_dropout': expected 0.0 when variational=False"):
        embdrop.GRU(8, 4, dropout=0.5, recurrent_dropout=0.2, variational=False)
    with pytest.warns(UserWarning, match="variational=False .* does nothing"):
        embdrop.LSTM(8, 4, variational=False)


def test_between_layers_the_mask_is_fixed_across_T():
    layer = embdrop.GRU(3, 5, num_layers=3, dropout=0.5, recurrent_dropout=0.5, bidirectional=True)
    m = layer.sample_masks(torch.zeros(4, 7, 3), generator=gen(0))
    assert [mm[0].shape for mm in m.input] == [(3, 4, 3), (3, 4, 10), (3, 4, 10)]
    assert len(m.input[0]) == 2  # each direction draws its own


def test_weight_dropout_masks_weight_hh_once_for_the_batch():
    torch.manual_seed(5)
    layer = embdrop.LSTM(4, 6, weight_dropout=0.5)
    x = torch.randn(3, 5, 4)
    m = layer.sample_masks(x, generator=gen(2))
    ref = torch_twin(layer)
    with torch.no_grad():
        ref.weight_hh_l0.mul_(m.weight[0][0] / 0.5)
    assert torch.allclose(layer(x, masks=m)[0], ref(x)[0], atol=1e-6)


def test_zoneout_keeps_previous_units_in_training_and_mixes_at_eval():
    torch.manual_seed(6)
    layer = embdrop.LSTM(3, 5, zoneout=0.5)
    x = torch.randn(2, 6, 3)
    m = layer.sample_masks(x, generator=gen(1))
    out, _ = layer(x, masks=m)
    kept = m.zoneout_h[0][0][:, 1:] == 0  # (B, T-1, H): these units keep h(t-1)
    assert kept.any() and torch.equal(out[:, 1:][kept], out[:, :-1][kept])
    layer.eval()
    out_eval, (h, c) = layer(x[:, :1])
    cell = nn.LSTMCell(3, 5)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in layer.state_dict().items()})
    h_new, c_new = cell(x[:, 0])
    assert torch.allclose(out_eval[:, 0], 0.5 * h_new, atol=1e-6)  # p * h0 + (1 - p) * new, h0 = 0
    assert torch.allclose(c[0], 0.5 * c_new, atol=1e-6)


def test_lengths_leave_padded_steps_untouched():
    torch.manual_seed(7)
    layer = embdrop.GRU(4, 6, dropout=0.3, recurrent_dropout=0.3)
    x = torch.randn(3, 8, 4)
    lengths = torch.tensor([8, 5, 2])
    m = layer.sample_masks(x, generator=gen(0))
    out, h = layer(x, lengths=lengths, masks=m)
    assert (out[1, 5:] == 0).all() and (out[2, 2:] == 0).all()
    # the masks of sequence 1 alone: input (G, B, C) and recurrent (G, B, H) sliced on B
    one = embdrop.RecurrentMasks([[m.input[0][0][:, 1:2]]], [[m.recurrent[0][0][:, 1:2]]], [[None]], [[None]], [[None]])
    out1, h1 = layer(x[1:2, :5], masks=one)  # sequence 1 alone, cut to its length
    assert torch.allclose(h[:, 1], h1[:, 0], atol=1e-6) and torch.allclose(out[1, :5], out1[0], atol=1e-6)


def test_pre_padding_mask_gives_the_same_result_as_post_padding():
    torch.manual_seed(8)
    layer = embdrop.LSTM(4, 6, bidirectional=True)
    x = torch.randn(2, 7, 4)
    post_mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    pre = torch.zeros_like(x)
    pre[0, 3:] = x[0, :4]
    pre[1] = x[1]
    pre_mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out_post, (h_post, _) = layer(x, lengths=post_mask)
    out_pre, (h_pre, _) = layer(pre, lengths=pre_mask)
    assert torch.allclose(h_post, h_pre, atol=1e-6)
    assert torch.allclose(out_pre[0, 3:], out_post[0, :4], atol=1e-6) and (out_pre[0, :3] == 0).all()


def test_mask_keep_rates_within_four_sigma():
    layer = embdrop.LSTM(100, 100, dropout=0.3, recurrent_dropout=0.6)
    m = layer.sample_masks(torch.zeros(500, 3, 100), generator=gen(0))
    for masks, p in ((m.input[0][0], 0.3), (m.recurrent[0][0], 0.6)):
        n = masks.numel()
        assert abs(masks.mean().item() - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n)


def test_eval_is_deterministic_and_is_torch():
    layer = embdrop.LSTM(4, 5, dropout=0.5, recurrent_dropout=0.5, weight_dropout=0.5).eval()
    x = torch.randn(2, 6, 4)
    state = torch.get_rng_state()
    a, b = layer(x)[0], layer(x)[0]
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
    assert torch.allclose(a, torch_twin(layer)(x)[0], atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_layer_contract(kind):
    check_layer_contract(
        lambda: getattr(embdrop, kind)(4, 5, dropout=0.3, recurrent_dropout=0.3, weight_dropout=0.2),
        lambda dt: (torch.randn(3, 6, 4, generator=gen(1)).to(dt),),
        eval_reference=lambda layer, inputs: torch_twin(layer)(inputs[0])[0],
    )


def test_gradcheck_float64_through_the_kernel_path():
    layer = embdrop.GRU(3, 4, dropout=0.3, recurrent_dropout=0.4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    masks = layer.sample_masks(x, generator=gen(5))
    assert torch.autograd.gradcheck(lambda t: layer(t, masks=masks)[0], (x,))
    layer = embdrop.LSTM(3, 4, dropout=0.3, recurrent_dropout=0.4).double()
    masks = layer.sample_masks(x, generator=gen(5))
    assert torch.autograd.gradcheck(lambda t: layer(t, lengths=torch.tensor([5, 3]), masks=masks)[0], (x,))
    layer = embdrop.SimpleRNN(3, 4, dropout=0.3, recurrent_dropout=0.4).double()
    masks = layer.sample_masks(x, generator=gen(5))
    assert masks.input[0][0].shape == (1, 2, 3) and masks.recurrent[0][0].shape == (1, 2, 4)
    assert torch.autograd.gradcheck(lambda t: layer(t, lengths=torch.tensor([5, 3]), masks=masks)[0], (x,))


@pytest.mark.slow
def test_torch_compile_of_a_model_using_them():
    model = nn.Sequential()
    emb = embdrop.Embedding(50, 8, padding_idx=0, dropout=0.1)
    lstm = embdrop.LSTM(8, 16, dropout=0.5, recurrent_dropout=0.5)
    head = nn.Linear(16, 1)

    def forward(ids):
        out, _ = lstm(emb(ids))
        return head(out[:, -1])

    compiled = torch.compile(forward)
    ids = torch.randint(1, 50, (4, 12))
    y = compiled(ids)
    y.sum().backward()
    assert y.shape == (4, 1) and lstm.weight_hh_l0.grad is not None
    del model


def test_state_dict_loads_from_torch():
    ref = nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    ours = embdrop.LSTM(4, 5, num_layers=2, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())


def test_errors():
    with pytest.raises(
        ValueError,
        match=r"argument 'recurrent_dropout': expected a float in \[0, 1\)\. Received: "
        r"recurrent_dropout=1.0",
    ):
        embdrop.LSTM(3, 4, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match=r"argument 'hidden_size': expected an int >= 1"):
        embdrop.GRU(3, 0)
    layer = embdrop.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"argument 'x': expected a tensor of shape \(B, T, 3\)"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"argument 'x': expected a tensor of rank 3"):
        layer(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"argument 'lengths': expected lengths in \[1, 5\]"):
        layer(torch.randn(2, 5, 3), lengths=torch.tensor([5, 0]))
    with pytest.raises(ValueError, match=r"argument 'lengths': expected a padding mask \(B, T\) whose True entries"):
        layer(torch.randn(2, 5, 3), lengths=torch.tensor([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match=r"argument 'state': expected tensors of shape \(1, 2, 4\)"):
        layer(torch.randn(2, 5, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match=r"argument 'bidirectional': expected a bool"):
        embdrop.GRU(3, 4, bidirectional="yes")
    with pytest.raises(ValueError, match=r"argument 'x': expected a tensor of the layer's dtype torch.float32 "
                       r"\(convert the input, or the layer with .to\(torch.float64\)\)"):  # fmt: skip
        layer(torch.randn(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"'state': expected tensors of shape \(1, 2, 4\), dtype torch.float32"):
        layer(torch.randn(2, 5, 3), (torch.zeros(1, 2, 4, dtype=torch.float64), torch.zeros(1, 2, 4)))


RATES = [{}, {"dropout": 0.5, "recurrent_dropout": 0.5}, {"dropout": 0.5}, {"zoneout": 0.3}, {"weight_dropout": 0.4},
         {"dropout": 0.3, "variational": False}]  # fmt: skip


@pytest.mark.parametrize("cls", [embdrop.LSTM, embdrop.GRU])
@pytest.mark.parametrize("rates", RATES, ids=lambda r: ",".join(r) or "none")
@pytest.mark.parametrize("training", [True, False])
def test_zero_steps_return_the_initial_state_and_zero_rows_an_empty_batch(cls, rates, training):
    """T = 0 (nn.LSTM refuses it) gives an empty output and the initial state on every path; B = 0 runs too."""
    layer = cls(3, 4, num_layers=2, bidirectional=True, **rates).train(training)
    h0 = torch.randn(4, 2, 4)
    state = (h0, h0 + 1) if cls is embdrop.LSTM else h0
    out, final = layer(torch.randn(2, 0, 3), state)
    assert out.shape == (2, 0, 8)
    for a, b in zip(final if cls is embdrop.LSTM else (final,), state if cls is embdrop.LSTM else (state,),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    out, final = layer(torch.randn(0, 5, 3), lengths=torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 5, 8) and (final[0] if cls is embdrop.LSTM else final).shape == (4, 0, 4)


@pytest.mark.parametrize("cls", [embdrop.LSTM, embdrop.GRU])
def test_eval_with_lengths_ignores_the_training_rates(cls):
    # eval runs every rate's expectation: no mask and no rescaling, with or without lengths (the lengths path on
    # CPU goes through the fused kernel with a unit state mask, which must not be scaled by 1/(1-p))
    torch.manual_seed(0)
    plain = cls(5, 7).eval()
    noisy = cls(5, 7, dropout=0.3, recurrent_dropout=0.5).eval()
    noisy.load_state_dict(plain.state_dict())
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 2, 4])
    for a, b in zip(plain(x, lengths=lengths), noisy(x, lengths=lengths), strict=True):
        a, b = (a, b) if isinstance(a, torch.Tensor) else (a[0], b[0])
        torch.testing.assert_close(a, b)
    out, _ = plain(x, lengths=lengths)
    torch.testing.assert_close(out[1, :2], plain(x[1:2, :2])[0][0])


def test_the_cells_facts_match_torchs_layout():
    for cls, torch_cls in ((embdrop.LSTM, nn.LSTM), (embdrop.GRU, nn.GRU)):
        assert cls.gates == len(cls.gate_order)
        assert cls(3, 5).weight_hh_l0.shape == torch_cls(3, 5).weight_hh_l0.shape == (cls.gates * 5, 5)


@pytest.mark.parametrize("mode", ["sum", "ave", "mul"])
def test_merge_modes_combine_the_two_directions_as_keras_bidirectional(mode):
    torch.manual_seed(6)
    concat = embdrop.GRU(4, 3, bidirectional=True).eval()
    merged = embdrop.GRU(4, 3, bidirectional=True, merge_mode=mode).eval()
    merged.load_state_dict(concat.state_dict())
    x = torch.randn(2, 5, 4)
    both, _ = concat(x)  # (B, T, 2H)
    a, b = both[..., :3], both[..., 3:]
    want = {"sum": a + b, "ave": (a + b) / 2, "mul": a * b}[mode]
    assert torch.allclose(merged(x)[0], want, atol=1e-6)
    stacked = embdrop.LSTM(4, 3, num_layers=2, bidirectional=True, merge_mode=mode)
    assert stacked.weight_ih_l1.shape == (12, 3) and stacked(x)[0].shape == (2, 5, 3)  # layer 2 reads H features
    with pytest.warns(UserWarning, match="does nothing"):
        embdrop.LSTM(4, 3, merge_mode=mode)


def test_simple_rnn_semantics_equal_a_hand_written_keras_cell():
    torch.manual_seed(7)
    layer = embdrop.SimpleRNN(4, 6, dropout=0.3, recurrent_dropout=0.5)
    x = torch.randn(3, 5, 4)
    m = layer.sample_masks(x, generator=gen(0))
    W, U, b = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0 + layer.bias_hh_l0
    mi, mr = m.input[0][0][0] / 0.7, m.recurrent[0][0][0] / 0.5  # one (B, C) and one (B, H) mask, fixed across T
    h = x.new_zeros(3, 6)
    for t in range(5):
        h = torch.tanh((x[:, t] * mi) @ W.T + (h * mr) @ U.T + b)
    out, hT = layer(x, masks=m)
    assert torch.allclose(hT[0], h, atol=1e-5) and torch.allclose(out[:, -1], h, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_weight_drop_drawn_in_the_call_equals_its_sampled_masks(kind):
    # In a training call the weight-drop mask is drawn as a key and applied by the kernel unwritten: the same draws,
    # outputs and gradients as the masks sample_masks writes out.
    layer = getattr(embdrop, kind)(4, 6, weight_dropout=0.4, recurrent_dropout=0.2)
    x = torch.randn(3, 5, 4, generator=gen(1))

    def run(**kw):
        layer.zero_grad()
        out, _ = layer(x, **kw)
        out.square().sum().backward()
        return out, layer.weight_hh_l0.grad.clone()

    a, b = run(generator=gen(8)), run(masks=layer.sample_masks(x, generator=gen(8)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("cls", [embdrop.LSTM, embdrop.GRU])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("rates", [{}, {"recurrent_dropout": 0.4, "dropout": 0.3}], ids=["lengths only", "dropout"])
def test_one_direction_pre_padding_equals_post_padding_rotated(cls, num_layers, rates):
    # one layer, one direction: the CPU kernel writes the output rotated back itself (no roll after the run)
    torch.manual_seed(9)
    layer = cls(4, 6, num_layers=num_layers, **rates)
    B, T = 3, 6
    n = torch.tensor([2, 6, 4])
    x = torch.randn(B, T, 4, requires_grad=True)
    post_mask = torch.arange(T).unsqueeze(0) < n.unsqueeze(1)
    m = layer.sample_masks(x, generator=gen(3)) if rates else None
    out_post, st_post = layer(x, lengths=post_mask, masks=m)
    pre = torch.stack([torch.roll(x[b], int(T - n[b]), 0) for b in range(B)])  # each row's real steps moved to the end
    out_pre, st_pre = layer(pre, lengths=torch.arange(T).unsqueeze(0) >= (T - n).unsqueeze(1), masks=m)
    want = torch.stack([torch.roll(out_post[b], int(T - n[b]), 0) for b in range(B)])
    assert torch.equal(out_pre, want)
    h_post, h_pre = (s[0] if isinstance(s, tuple) else s for s in (st_post, st_pre))
    assert torch.equal(h_post, h_pre)
    w = torch.randn(out_pre.shape, generator=gen(4))
    w_post = torch.stack([torch.roll(w[b], -int(T - n[b]), 0) for b in range(B)])  # the same weights, post-padded
    (g_post,) = torch.autograd.grad((out_post * w_post).sum(), x)
    (g_pre,) = torch.autograd.grad((out_pre * w).sum(), x)  # through the roll that built `pre`: x's own layout
    assert torch.equal(g_pre, g_post)

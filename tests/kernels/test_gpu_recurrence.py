"""The GPU path: the Triton steps against the reference loop (outputs and gradients), the masks hashed in the
kernels against the CPU's, and the dispatch that sends CUDA layers there. Without a GPU the kernels run under
Triton's interpreter (the root conftest sets TRITON_INTERPRET=1) on CPU tensors and the CUDA dispatch is faked;
on a CUDA machine (benchmarks/gpu_check.sh) they compile for the device."""

from __future__ import annotations

import warnings

import pytest
import torch

import embdrop
from embdrop.functional import masks as M
from embdrop.functional import recurrent as dispatch
from embdrop.kernels import reference

pytest.importorskip("triton")
from embdrop.kernels import gpu_recurrence as gr  # noqa: E402

pytestmark = pytest.mark.triton
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _case(cell: str, B: int, T: int, H: int, rec: bool, pad: bool, zone: str | None, seed: int = 0):
    """Inputs for one recurrence: the reference's arguments and the GPU path's (zoneout keys where ``zone`` is
    "hash", the same masks written out for the reference)."""
    g = torch.Generator().manual_seed(seed)
    G = 4 if cell == "lstm" else 3
    r = lambda *s, scale=1.0: (torch.randn(*s, generator=g) * scale).to(DEV).requires_grad_()  # noqa: E731
    xw, w, b, h0, c0 = r(G, T, B, H), r(G * H, H, scale=0.3), r(G * H, scale=0.1), r(B, H), r(B, H)
    rm = ((torch.rand(G, B, H, generator=g) > 0.4).float() / 0.6).to(DEV) if rec else None
    step = None
    if pad:
        n = torch.randint(0, T + 1, (B,), generator=g)
        n[0] = T
        step = (torch.arange(T)[:, None] < n[None]).to(DEV)
    zh = zc = kh = kc = None
    if zone == "mask":
        zh, zc = ((torch.rand(T, B, H, generator=g) > 0.3).float().to(DEV) for _ in range(2))
        kh, kc = zh, zc
    elif zone == "hash":  # (B, T, H) masks drawn as keys: the reference reads them written out
        keys = [M.deferred_keep_hashed((B, T, H), 0.3, generator=g, anywhere=True) for _ in range(2)]
        zh, zc = (k.tensor().transpose(0, 1).to(DEV) for k in keys)
        kh, kc = (gr.HashedZoneout(k.key.to(DEV), k.threshold) for k in keys)
    elif zone == "eval":
        zh = zc = kh = kc = 0.7
    return (xw, w, b, h0, c0), rm, step, (zh, zc), (kh, kc)


def _both(cell, leaves, rm, step, zones, keys):
    xw, w, b, h0, c0 = leaves
    if cell == "lstm":
        ref = reference.lstm_recurrence(xw, w, rm, h0, c0, step, *zones)
        got = gr.lstm_recurrence(xw, w, rm, h0, c0, step, *keys)
    else:
        ref = reference.gru_recurrence(xw, w, b, rm, h0, step, zones[0])
        got = gr.gru_recurrence(xw, w, b, rm, h0, step, keys[0])
    return ref, got


def _grads(outputs, leaves, weights):
    loss = sum((o * k).sum() for o, k in zip(outputs, weights, strict=True))
    return torch.autograd.grad(loss, leaves, allow_unused=True)


_SLOW = pytest.mark.slow  # under the interpreter each case takes 0.3-1.3 s: two in the default suite, all under -m slow
CASES = [  # (rec, pad, zone)
    pytest.param(True, False, None, marks=_SLOW),
    pytest.param(False, False, None, marks=_SLOW),
    pytest.param(True, True, None, marks=_SLOW),
    pytest.param(True, False, "mask", marks=_SLOW),
    (True, True, "hash"),
    (False, True, "eval"),
]


@pytest.fixture(params=["steps", "sequence"])
def kind(request, monkeypatch):
    """Both kernel kinds: one launch per step, and the single launch with the time loop inside."""
    monkeypatch.setenv("EMBDROP_GPU_KERNEL", request.param)
    return request.param


def test_the_kernel_kind_is_chosen_by_the_environment_and_h(monkeypatch):
    assert gr.kernel_kind(100) == "steps"  # the default
    monkeypatch.setenv("EMBDROP_GPU_KERNEL", "sequence")
    assert gr.kernel_kind(100) == "sequence" and gr.kernel_kind(gr.SEQUENCE_MAX_H + 1) == "steps"
    monkeypatch.setenv("EMBDROP_GPU_KERNEL", "fast")
    with pytest.raises(ValueError, match="EMBDROP_GPU_KERNEL.*'steps' or 'sequence'.*fast"):
        gr.kernel_kind(100)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("rec", "pad", "zone"), CASES)
def test_the_triton_steps_give_the_reference_outputs_and_gradients(cell, rec, pad, zone, kind):
    leaves, rm, step, zones, keys = _case(cell, B=5, T=6, H=20, rec=rec, pad=pad, zone=zone)
    ref, got = _both(cell, leaves, rm, step, zones, keys)
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # inference (MC dropout) saves nothing for a backward and gives the same
        for a, b in zip(ref, _both(cell, leaves, rm, step, zones, keys)[1], strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    weights = [torch.randn_like(o) for o in ref]
    used = leaves if cell == "gru" else leaves[:2] + leaves[3:]  # the LSTM's biases are in xw already
    for a, b in zip(_grads(ref, used, weights), _grads(got, used, weights), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ragged_tiles_and_several_tiles_per_dimension(cell, kind):
    """B and H neither multiples of 16 nor within one tile: the grid's edges and the product's K loop."""
    leaves, rm, step, zones, keys = _case(cell, B=19, T=3, H=70, rec=True, pad=True, zone="hash", seed=1)
    ref, got = _both(cell, leaves, rm, step, zones, keys)
    for a, b in zip(ref, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=2e-5)
    weights = [torch.randn_like(o) for o in ref]
    used = leaves if cell == "gru" else leaves[:2] + leaves[3:]
    for a, b in zip(_grads(ref, used, weights), _grads(got, used, weights), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=5e-5)


def test_products_in_bfloat16_stay_close_to_float32():
    """Under autocast the recurrent weights come in bfloat16: the products run in it, accumulated in float32."""
    leaves, rm, step, zones, keys = _case("lstm", B=4, T=5, H=32, rec=True, pad=False, zone=None)
    xw, w, b, h0, c0 = leaves
    exact = gr.lstm_recurrence(xw, w, rm, h0, c0)[0]
    low = gr.lstm_recurrence(xw, w.to(torch.bfloat16), rm, h0, c0)[0]
    assert low.dtype == torch.float32
    assert 0 < (low - exact).abs().max() < 0.05  # rounded (bfloat16 has 8 bits), not wrong
    (gw,) = torch.autograd.grad(low.sum(), w)
    assert gw.dtype == w.dtype and torch.isfinite(gw).all()


def test_hashed_zoneout_in_the_kernels_is_the_cpu_mask_bit_for_bit():
    """The key a generator draws gives, hashed inside the kernels, the mask bernoulli_keep_hashed writes on the CPU
    from the same generator: with zoneout alone (update 1 takes the new state) the output shows which entries were
    kept."""
    B, T, H = 3, 4, 24
    keys = M.deferred_keep_hashed((B, T, H), 0.5, generator=torch.Generator().manual_seed(9), anywhere=True)
    cpu = M.bernoulli_keep_hashed((B, T, H), 0.5, generator=torch.Generator().manual_seed(9))
    xw = torch.full((3, T, B, H), 20.0, device=DEV)  # saturated gates (no recurrent weight): r = 1, n = 1
    xw[1] = -20.0  # z = 0 (to float32): h(t) = n = 1 where the update is taken, h(t - 1) where it is not
    h0 = torch.zeros(B, H, device=DEV)
    out, _ = gr.gru_recurrence(xw, torch.zeros(3 * H, H, device=DEV), None, None, h0, None,
                               gr.HashedZoneout(keys.key.to(DEV), keys.threshold))  # fmt: skip
    taken = out.transpose(0, 1).cpu() == 1.0  # (B, T, H); h stays 0 until a step takes the update
    first = cpu.cumsum(1) > 0  # taken at least once by step t
    assert torch.equal(taken, first)
    assert 0.3 < cpu.mean() < 0.7


def _path(mp, gpu: bool) -> None:
    """Choose the path: without CUDA the GPU dispatch is faked on CPU tensors (``gpu=False``: the CPU's own path);
    on CUDA, ``gpu=False`` is the reference loop there."""
    if DEV == "cpu":
        mp.setattr(dispatch, "_on_gpu", lambda device: gpu)
    elif not gpu:
        mp.setattr(dispatch, "_gpu_loop", lambda *a: False)


def _forward(m, x, lengths, seed):
    g = torch.Generator(device=DEV).manual_seed(seed)
    out = m(x, lengths=lengths, generator=g)[0]
    return out, torch.autograd.grad(out.sum(), x)[0]


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        (embdrop.LSTM, {"dropout": 0.3, "recurrent_dropout": 0.4, "zoneout": 0.2}),
        (embdrop.GRU, {"dropout": 0.3, "recurrent_dropout": 0.4, "zoneout": 0.2}),
        (embdrop.LSTM, {"zoneout": 0.3, "bidirectional": True, "num_layers": 2}),
    ],
)
def test_a_layer_on_the_gpu_path_gives_the_other_path_results_for_the_same_seed(monkeypatch, cls, kw):
    """A layer on the GPU path runs the Triton steps (the reference loop does not), with the same masks from the
    same generator (zoneout's as keys hashed in the kernels), and gives the outputs and gradients of the CPU's path
    (without a GPU, the dispatch faked) or of the reference loop (on CUDA)."""
    torch.manual_seed(0)
    m = cls(7, 20, **kw).to(DEV)
    x = torch.randn(3, 6, 7, device=DEV, requires_grad=True)
    lengths = torch.tensor([6, 3, 5])
    with monkeypatch.context() as mp:
        _path(mp, gpu=False)
        out_other, gx_other = _forward(m, x, lengths, 5)
        m.eval()  # zoneout's expectation
        eval_other = m(x)[0]
        m.train()
    _path(monkeypatch, gpu=True)
    ran = []
    for name in ("lstm_recurrence", "gru_recurrence"):
        monkeypatch.setattr(reference, name, lambda *a, **k: pytest.fail("the reference loop ran"))
        real = getattr(gr, name)
        monkeypatch.setattr(gr, name, lambda *a, _real=real, **k: ran.append(1) or _real(*a, **k))
    drawn = m._draw_masks(x, torch.Generator(device=DEV).manual_seed(5), deferred=True)
    assert isinstance(drawn.zoneout_h[0][0], M.HashedKeep)  # keys, not written masks
    out_gpu, gx_gpu = _forward(m, x, lengths, 5)
    assert ran
    torch.testing.assert_close(out_gpu, out_other, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_gpu, gx_other, rtol=1e-5, atol=1e-6)
    m.eval()
    torch.testing.assert_close(m(x)[0], eval_other, rtol=1e-5, atol=1e-6)


def test_without_recurrent_masks_the_gpu_path_calls_torch_own_layer(monkeypatch):
    """Dropout on the input only (or none): the input is masked once and torch's fused layer runs (cuDNN on a GPU),
    never the step loop."""
    monkeypatch.setattr(dispatch, "_on_gpu", lambda device: True)
    monkeypatch.setattr(dispatch, "_loop", lambda *a, **k: pytest.fail("the step loop ran"))
    called = []
    real = dispatch._torch_layer
    monkeypatch.setattr(dispatch, "_torch_layer", lambda *a, **k: called.append(1) or real(*a, **k))
    m = embdrop.LSTM(7, 20, dropout=0.5)
    m(torch.randn(2, 5, 7))
    assert called


def test_without_triton_one_warning_and_the_reference_loop(monkeypatch):
    monkeypatch.setattr(dispatch, "_on_gpu", lambda device: True)
    monkeypatch.setattr(gr, "installed", lambda: False)
    monkeypatch.setattr(dispatch.build, "available", lambda: False)  # on CUDA the CPU kernel never runs
    monkeypatch.setattr(gr, "lstm_recurrence", lambda *a, **k: pytest.fail("the Triton steps ran"))
    dispatch._warn_no_triton.cache_clear()
    ran = []
    real = reference.lstm_recurrence
    monkeypatch.setattr(reference, "lstm_recurrence", lambda *a, **k: ran.append(1) or real(*a, **k))
    m = embdrop.LSTM(7, 20, recurrent_dropout=0.5, zoneout=0.1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m(torch.randn(2, 5, 7))
        m(torch.randn(2, 5, 7))
    said = [w for w in seen if "Triton is not installed" in str(w.message)]
    assert len(said) == 1 and len(ran) == 2
    dispatch._warn_no_triton.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_dropout_without_recurrent_masks_runs_cudnn():
    """Keras shipped a silent fallback from cuDNN for two months (keras#22874): the profiler must see cuDNN's RNN."""
    m = embdrop.LSTM(16, 32, dropout=0.5).cuda()
    x = torch.randn(4, 10, 16, device="cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        m(x)[0].sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert any("cudnn_rnn" in n for n in names), sorted(names)[:20]


class _Counted:
    """A Triton kernel whose launches are counted."""

    def __init__(self, kernel, launches: list):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid):
        launch = self.kernel[grid]
        return lambda *a, **k: self.launches.append(1) or launch(*a, **k)


@pytest.mark.parametrize(("kind_name", "forward", "backward"), [("steps", 6, 7), ("sequence", 1, 1)])
def test_launches_per_call(monkeypatch, kind_name, forward, backward):
    """One launch per step (and one for dh0) with the step kernels; one per call with the single-launch ones."""
    from embdrop.kernels import triton_sequence, triton_steps

    monkeypatch.setenv("EMBDROP_GPU_KERNEL", kind_name)
    fwd, bwd = [], []
    for module in (triton_steps, triton_sequence):
        for name in dir(module):
            if name.startswith("lstm_forward"):
                monkeypatch.setattr(module, name, _Counted(getattr(module, name), fwd))
            elif name.startswith("lstm_backward"):
                monkeypatch.setattr(module, name, _Counted(getattr(module, name), bwd))
    leaves, rm, step, _, keys = _case("lstm", B=3, T=6, H=20, rec=True, pad=False, zone="hash")
    xw, w, b, h0, c0 = leaves
    out = gr.lstm_recurrence(xw, w, rm, h0, c0, step, *keys)[0]
    assert len(fwd) == forward and not bwd
    out.sum().backward()
    assert len(bwd) == backward


def test_under_autocast_the_gpu_path_runs_its_products_in_bfloat16(monkeypatch):
    """torch.autocast on the layer's device: the input projection in bfloat16, the recurrent products too (the
    weights cast once per call), the state in float32; close to the float32 result, as the CPU kernel is."""
    torch.manual_seed(0)
    m = embdrop.LSTM(7, 32, dropout=0.3, recurrent_dropout=0.3, zoneout=0.1).to(DEV)
    x = torch.randn(2, 5, 7, device=DEV)
    exact = m(x, generator=torch.Generator(device=DEV).manual_seed(1))[0]
    _path(monkeypatch, gpu=True)
    seen = []
    real = gr.lstm_recurrence
    monkeypatch.setattr(gr, "lstm_recurrence", lambda xw, w, *a, **k: seen.append(w.dtype) or real(xw, w, *a, **k))
    with torch.autocast(DEV, dtype=torch.bfloat16):
        low = m(x, generator=torch.Generator(device=DEV).manual_seed(1))[0]
    assert seen == [torch.bfloat16] and low.dtype == torch.float32
    assert 0 < (low - exact).abs().max() < 0.05

import subprocess
import sys
import warnings

import pytest
import torch

from embdrop.kernels import build, reference
from embdrop.kernels import recurrence as fused

needs_kernel = pytest.mark.usefixtures("fused_kernel")  # built once, when the first such test runs


@pytest.fixture
def row_blocks(fused_kernel):
    """Forces the kernel's row blocks (0: its rule) for the test, and restores the rule after it."""
    yield fused_kernel.extension().set_row_blocks
    fused_kernel.extension().set_row_blocks(0)


def inputs(kind, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    G, T, B, H = (4 if kind == "lstm" else 3), 7, 3, 5
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_()  # noqa: E731
    xw, w, b, h0, c0 = r(G, T, B, H), r(G * H, H), r(G * H), r(B, H), r(B, H)
    rm = (torch.rand(G, B, H, generator=g) > 0.4).to(dtype) / 0.6
    step = torch.arange(T).unsqueeze(1) < torch.tensor([7, 4, 1]).unsqueeze(0)  # (T, B)
    return xw, w, b, rm, h0, c0, step


def zoneout(zone, dtype, T=7, B=3, H=5, seed=4):
    """The zoneout arguments of both implementations: none, training masks (T, B, H) for h and c, or eval's 1 - p."""
    if zone is None:
        return None, None
    if zone == "eval":
        return 0.7, 0.7
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.rand(T, B, H, generator=g) > 0.3).to(dtype) for _ in range(2))


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("zone", [None, "train", "eval"])
@pytest.mark.parametrize("blocks", [0, 3])  # the rule (one block for B = 3 on 2 threads), or one block per row
def test_kernel_equals_reference_outputs_and_gradients(kind, dtype, padded, zone, blocks, row_blocks):
    xw, w, b, rm, h0, c0, step = inputs(kind, dtype)
    st = step if padded else None
    zh, zc = zoneout(zone, dtype)
    row_blocks(blocks)
    if kind == "lstm":
        fast = fused.lstm_recurrence(xw, w, rm, h0, c0, st, zh, zc)
        slow = reference.lstm_recurrence(xw, w, rm, h0, c0, st, zh, zc)
        leaves = [xw, w, h0, c0]
    else:
        fast, slow = (
            fused.gru_recurrence(xw, w, b, rm, h0, st, zh),
            reference.gru_recurrence(xw, w, b, rm, h0, st, zh),
        )
        leaves = [xw, w, b, h0]
    weights = [torch.randn_like(o) for o in fast]
    g_fast = torch.autograd.grad(sum((o * q).sum() for o, q in zip(fast, weights, strict=True)), leaves)
    row_blocks(0)
    g_slow = torch.autograd.grad(sum((o * q).sum() for o, q in zip(slow, weights, strict=True)), leaves)
    for a, s in zip([*fast, *g_fast], [*slow, *g_slow], strict=True):
        assert torch.allclose(a, s, atol=1e-5)
    if padded:
        assert (fast[0][4:, 1] == 0).all() and (fast[0][1:, 2] == 0).all()
    if zone == "train":  # a unit zoned out at step 1 keeps step 0's value in h (and c)
        kept = zh[1] == 0
        assert kept.any() and torch.equal(fast[0][1][kept], fast[0][0][kept]) if not padded else True


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("zone", [None, "train"])
@pytest.mark.parametrize("blocks", [0, 3])  # one block, or one per row: each block's masked copies side by side
def test_without_gradients_the_kernel_keeps_one_step_and_gives_the_same_outputs(kind, zone, blocks, row_blocks):
    xw, w, b, rm, h0, c0, step = inputs(kind, torch.float32, seed=7)
    zh, zc = zoneout(zone, torch.float32)
    row_blocks(blocks)
    if kind == "lstm":
        run = lambda: fused.lstm_recurrence(xw, w, rm, h0, c0, step, zh, zc)  # noqa: E731
    else:
        run = lambda: fused.gru_recurrence(xw, w, b, rm, h0, step, zh)  # noqa: E731
    kept = run()
    with torch.no_grad():
        light = run()
    for a, e in zip(light, kept, strict=True):
        assert torch.equal(a, e)
    T, B, H = 7, 3, 5
    G = 4 if kind == "lstm" else 3
    args = [a.detach() for a in (xw, w)]
    with torch.no_grad():
        if kind == "lstm":
            outs = torch.ops.embdrop.lstm_forward(*args, rm, h0.detach(), c0.detach(), step, *NO_ZONE, False)
        else:
            outs = torch.ops.embdrop.gru_forward(*args, b.detach(), rm, h0.detach(), step, NO_ZONE[0], False)
    hm = outs[3]  # (out, the final h, the c or h history, hm, ...)
    assert outs[1].shape == outs[2].shape == (1, B, H) and hm.shape == (G, 1, B, H)  # memory that does not grow with T
    assert outs[0].shape == (T, B, H)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("zone", ["train", "eval"])
def test_an_all_ones_mask_without_gradients_reads_the_state_itself_to_the_same_outputs(kind, zone):
    """Zoneout or padding without recurrent dropout hand the kernel an all-ones mask; without gradients it then
    multiplies h(t-1) itself for every gate (no masked copies): the same outputs as with gradients and as the
    reference loop."""
    xw, w, b, _, h0, c0, step = inputs(kind, torch.float32, seed=3)
    ones = torch.ones(xw.shape[0], 3, 5)
    zh, zc = zoneout(zone, torch.float32)
    if kind == "lstm":
        run = lambda m: fused.lstm_recurrence(xw, w, m, h0, c0, step, zh, zc)  # noqa: E731
        ref = reference.lstm_recurrence(xw, w, None, h0, c0, step, zh, zc)
    else:
        run = lambda m: fused.gru_recurrence(xw, w, b, m, h0, step, zh)  # noqa: E731
        ref = reference.gru_recurrence(xw, w, b, None, h0, step, zh)
    kept = run(ones)
    with torch.no_grad():
        light = run(ones)
    for a, e, r in zip(light, kept, ref, strict=True):
        torch.testing.assert_close(a, e, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(a, r.detach(), atol=1e-5, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradcheck_float64_with_zoneout(kind):
    xw, w, b, rm, h0, c0, step = inputs(kind, torch.float64, seed=5)
    zh, zc = zoneout("train", torch.float64, seed=6)
    if kind == "lstm":
        f = lambda x, ww, h, c: fused.lstm_recurrence(x, ww, rm, h, c, step, zh, zc)  # noqa: E731
        assert torch.autograd.gradcheck(f, (xw, w, h0, c0))
    else:
        f = lambda x, ww, bb, h: fused.gru_recurrence(x, ww, bb, rm, h, step, zh)  # noqa: E731
        assert torch.autograd.gradcheck(f, (xw, w, b, h0))


@needs_kernel
def test_gradcheck_float64():
    xw, w, b, rm, h0, c0, step = inputs("lstm", torch.float64, seed=1)
    assert torch.autograd.gradcheck(lambda *a: fused.lstm_recurrence(*a[:2], rm, *a[2:], step), (xw, w, h0, c0))
    xw, w, b, rm, h0, c0, step = inputs("gru", torch.float64, seed=2)
    assert torch.autograd.gradcheck(lambda x, ww, bb, h: fused.gru_recurrence(x, ww, bb, rm, h, step), (xw, w, b, h0))


def test_failed_build_warns_once_and_falls_back(monkeypatch, tmp_path):
    import torch.utils.cpp_extension as ce

    monkeypatch.setenv("EMBDROP_CACHE", str(tmp_path))  # no cached build to fall back on
    monkeypatch.delitem(sys.modules, build._build_name(), raising=False)

    def broken(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(ce, "load", broken)
    monkeypatch.setattr(build, "_state", {})
    monkeypatch.delenv("EMBDROP_KERNEL", raising=False)
    with pytest.warns(RuntimeWarning, match="could not be built .*Ninja is required.*reference loop"):
        assert not build.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not build.available()  # decided once, no second warning


def test_env_var_chooses_the_reference_and_the_layer_still_works():
    code = (
        "import torch, embdrop; from embdrop.kernels import build;"
        "m = embdrop.LSTM(3, 4, dropout=0.5, recurrent_dropout=0.5);"
        "out, _ = m(torch.randn(2, 5, 3)); out.sum().backward();"
        "print(build.available(), tuple(out.shape))"
    )
    env = {"EMBDROP_KERNEL": "reference", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False (2, 5, 4)"


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bfloat16_weight_runs_the_recurrent_products_in_bfloat16_and_the_rest_in_float32(kind):
    xw, w, b, rm, h0, c0, step = inputs(kind, torch.float32, seed=3)
    w16 = w.detach().bfloat16().requires_grad_()  # what the layer passes under torch.autocast
    if kind == "lstm":
        mixed, exact = (
            fused.lstm_recurrence(xw, w16, rm, h0, c0, step),
            fused.lstm_recurrence(xw, w, rm, h0, c0, step),
        )
    else:
        mixed, exact = (
            fused.gru_recurrence(xw, w16, b, rm, h0, step),
            fused.gru_recurrence(xw, w, b, rm, h0, step),
        )
    assert all(o.dtype == torch.float32 for o in mixed)
    for m, e in zip(mixed, exact, strict=True):
        # the state is float32: the mixed result is within bfloat16 rounding (2^-8 relative) of the exact one
        assert (m - e).abs().max() < 0.05 * e.abs().max()
        assert not torch.equal(m, e)  # the products really ran in bfloat16
    leaves_m, leaves_e = [xw, w16, h0], [xw, w, h0]
    gm = torch.autograd.grad(sum(o.sum() for o in mixed), leaves_m)
    ge = torch.autograd.grad(sum(o.sum() for o in exact), leaves_e)
    assert gm[1].dtype == torch.bfloat16 and gm[0].dtype == torch.float32  # dW in the weight's dtype
    for a, e in zip(gm, ge, strict=True):
        assert (a.float() - e).norm() < 0.03 * e.norm()


NO_ZONE = (torch.empty(0), torch.empty(0))  # the ops' zoneout arguments for no zoneout


def _lstm_args(T=3, B=2, H=4, dtype=torch.float32):
    return [torch.randn(4, T, B, H, dtype=dtype), torch.randn(4 * H, H, dtype=dtype), torch.ones(4, B, H, dtype=dtype),
            torch.zeros(B, H, dtype=dtype), torch.zeros(B, H, dtype=dtype)]  # fmt: skip


@needs_kernel
@pytest.mark.parametrize(
    ("position", "bad", "message"),
    [
        (0, torch.randn(4, 0, 2, 4), r"'xw': expected T >= 1"),
        (0, torch.randn(3, 3, 2, 4), r"'xw': expected a tensor of shape \(G, T, B, H\) with G = 4"),
        (0, torch.randn(4, 3, 2, 4, dtype=torch.float16), r"'xw': expected a CPU float32 or float64 tensor"),
        (1, torch.randn(16, 5), r"'w_hh': expected a CPU float32 or bfloat16 or float16 tensor of shape \(16, 4\)"),
        (2, torch.ones(4, 5, 4), r"'rmask': expected a CPU float32 tensor of shape \(4, 2, 4\)"),
        (2, torch.ones(4, 2, 4, dtype=torch.float64), r"'rmask': expected a CPU float32 tensor"),
        (3, torch.zeros(3, 4), r"'h0': expected a CPU float32 tensor of shape \(2, 4\)"),
        (4, torch.zeros(2, 5), r"'c0': expected"),
    ],
)
def test_the_public_ops_check_their_arguments(position, bad, message):
    args = _lstm_args()
    args[position] = bad
    with pytest.raises(ValueError, match=message):
        torch.ops.embdrop.lstm_forward(*args, torch.empty(0, dtype=torch.bool), *NO_ZONE, True)
    with pytest.raises(ValueError, match="'step': expected a CPU bool tensor of shape \\(3, 2\\)"):
        torch.ops.embdrop.lstm_forward(*_lstm_args(), torch.ones(3, 5, dtype=torch.bool), *NO_ZONE, True)
    with pytest.raises(ValueError, match=r"'zoneout_h': expected a CPU float32 tensor of shape \(3, 2, 4\)"):
        torch.ops.embdrop.lstm_forward(*_lstm_args(), torch.empty(0, dtype=torch.bool), torch.ones(3, 2, 5),
                                       torch.ones(3, 2, 4), True)  # fmt: skip
    g = [torch.randn(3, 3, 2, 4), torch.randn(12, 4), torch.randn(12), torch.ones(3, 2, 4), torch.zeros(2, 4)]
    g[1] = torch.randn(12, 5)
    with pytest.raises(ValueError, match="'w_hh': expected a CPU float32 or bfloat16 or float16 tensor of shape"):
        torch.ops.embdrop.gru_forward(*g, torch.empty(0, dtype=torch.bool), NO_ZONE[0], True)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_backward_ops_check_what_they_read(kind):
    T, B, H = 3, 2, 4
    if kind == "lstm":
        out, hs, cs, hm, gates, tcs = torch.ops.embdrop.lstm_forward(
            *_lstm_args(T, B, H), torch.empty(0, dtype=torch.bool), *NO_ZONE, True
        )
        args = [torch.ones(T, B, H), torch.ones(B, H), torch.ones(B, H), torch.randn(4 * H, H), torch.ones(4, B, H),
                cs, hm, gates, tcs, torch.empty(0, dtype=torch.bool), *NO_ZONE]  # fmt: skip
        op, at = torch.ops.embdrop.lstm_backward, {"hm": 6, "gates": 7, "tcs": 8, "rmask": 4, "states": 5}
    else:
        g = [torch.randn(3, T, B, H), torch.randn(3 * H, H), torch.randn(3 * H), torch.ones(3, B, H), torch.zeros(B, H)]
        out, _, hs, hm, gates, hpn = torch.ops.embdrop.gru_forward(
            *g, torch.empty(0, dtype=torch.bool), NO_ZONE[0], True
        )
        args = [torch.ones(T, B, H), torch.ones(B, H), g[1], g[3], hs, hm, gates, hpn, torch.empty(0, dtype=torch.bool),
                NO_ZONE[0]]  # fmt: skip
        op, at = torch.ops.embdrop.gru_backward, {"hm": 5, "gates": 6, "hpn": 7, "rmask": 3, "states": 4}
    assert op(*args)[0].shape == hm.shape  # the right arguments run
    for name, position in at.items():
        bad = list(args)
        # one column short (a read past its end without the check); the states without their time axis
        bad[position] = args[position][0] if name == "states" else args[position][..., :-1]
        with pytest.raises(ValueError, match=f"argument '{name}': expected"):
            op(*bad)
    bad = list(args)
    bad[at["states"] + 4] = torch.ones(T + 1, B, dtype=torch.bool)  # the step mask, after the saved tensors
    with pytest.raises(ValueError, match="argument 'step': expected a CPU bool tensor of shape \\(3, 2\\)"):
        op(*bad)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zero_steps_and_zero_rows(kind):
    """T = 0 on the reference loop gives an empty output and the initial state; B = 0 runs on the kernel."""
    G, H = (4 if kind == "lstm" else 3), 4
    h0 = torch.randn(2, H)
    if kind == "lstm":
        out, h, c = reference.lstm_recurrence(torch.randn(G, 0, 2, H), torch.randn(G * H, H), None, h0, h0 * 2)
        assert out.shape == (0, 2, H) and torch.equal(h, h0) and torch.equal(c, h0 * 2)
    else:
        out, h = reference.gru_recurrence(torch.randn(G, 0, 2, H), torch.randn(G * H, H), None, None, h0)
        assert out.shape == (0, 2, H) and torch.equal(h, h0)
    if build.available():
        empty = torch.zeros(0, H)
        args = (torch.randn(G, 3, 0, H), torch.randn(G * H, H), torch.ones(G, 0, H), empty)
        out = fused.lstm_recurrence(*args, empty) if kind == "lstm" else fused.gru_recurrence(args[0], args[1], None,
                                                                                         args[2], empty)  # fmt: skip
        assert out[0].shape == (3, 0, H)


@needs_kernel
def test_the_layers_first_calls_leave_torch_dynamo_unimported():
    """Importing the layers and the fused kernel's first forward and backward (LSTM, GRU, embedding dropout) import
    no torch._dynamo: it costs about a second, twice the layers' own import (torch's custom ops import it on their
    first call unless told; kernels.build tells them while nothing compiles). With torch.compile in the process the
    kernels are kept out of its trace as torch does it."""
    code = (
        "import sys, torch\n"
        "from embdrop import GRU, LSTM, Embedding\n"
        "from embdrop.kernels import build, recurrence as fused\n"
        "assert build.available()\n"
        "LSTM(8, 8, dropout=0.5, recurrent_dropout=0.5, zoneout=0.1)(torch.randn(2, 5, 8))[0].sum().backward()\n"
        "GRU(8, 8, recurrent_dropout=0.5)(torch.randn(2, 5, 8))[0].sum().backward()\n"
        "Embedding(50, 4, dropout=0.3)(torch.randint(0, 50, (2, 5))).sum().backward()\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo imported'\n"
        "import torch._dynamo\n"
        "fn = fused._lstm_forward._backend_fns[None].__wrapped__\n"
        "LSTM(8, 8, recurrent_dropout=0.5)(torch.randn(2, 5, 8))\n"
        "assert getattr(fn, '__dynamo_disable') is not None and 'run' not in getattr(fn, '__dynamo_disable').__name__\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("blocks", [1, 2])
def test_products_large_enough_for_onednn_and_row_blocks_equal_the_reference(kind, blocks, row_blocks):
    # (G, 32, 256) x (G, 256, 256) per step and the weight gradient are above the size from which oneDNN's matmul
    # runs (csrc/gemm.cpp); B = 32 in one block or two
    g = torch.Generator().manual_seed(3)
    G, T, B, H = (4 if kind == "lstm" else 3), 3, 32, 256
    r = lambda *s: (torch.randn(*s, generator=g) * 0.1).requires_grad_()  # noqa: E731
    xw, w, b, h0, c0 = r(G, T, B, H), r(G * H, H), r(G * H), r(B, H), r(B, H)
    rm = (torch.rand(G, B, H, generator=g) > 0.5).float() * 2
    row_blocks(blocks)
    if kind == "lstm":
        fast = fused.lstm_recurrence(xw, w, rm, h0, c0)
        slow = reference.lstm_recurrence(xw, w, rm, h0, c0)
        leaves = [xw, w, h0, c0]
    else:
        fast, slow = fused.gru_recurrence(xw, w, b, rm, h0), reference.gru_recurrence(xw, w, b, rm, h0)
        leaves = [xw, w, b, h0]
    weights = [torch.randn(o.shape, generator=g) for o in fast]
    g_fast = torch.autograd.grad(sum((o * q).sum() for o, q in zip(fast, weights, strict=True)), leaves)
    g_slow = torch.autograd.grad(sum((o * q).sum() for o, q in zip(slow, weights, strict=True)), leaves)
    for a, s in zip([*fast, *g_fast], [*slow, *g_slow], strict=True):
        assert torch.allclose(a, s, rtol=1e-4, atol=1e-4), (a - s).abs().max()
    with torch.no_grad():  # inference: each block's masked copies in a layout of their own, the same numbers
        light = fused.lstm_recurrence(xw, w, rm, h0, c0) if kind == "lstm" else fused.gru_recurrence(xw, w, b, rm, h0)
    for a, s in zip(light, fast, strict=True):
        assert torch.equal(a, s)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_one_step_with_gradients_in_several_row_blocks_equals_the_reference(kind, row_blocks):
    # T = 1 keeps one step of the saved tensors, as inference does: the weight gradient must still read them in
    # the training layout
    g = torch.Generator().manual_seed(5)
    G, B, H = (4 if kind == "lstm" else 3), 3, 5
    r = lambda *s: torch.randn(*s, generator=g).requires_grad_()  # noqa: E731
    xw, w, b, h0, c0 = r(G, 1, B, H), r(G * H, H), r(G * H), r(B, H), r(B, H)
    rm = (torch.rand(G, B, H, generator=g) > 0.4).float() / 0.6
    row_blocks(3)
    if kind == "lstm":
        fast, slow = fused.lstm_recurrence(xw, w, rm, h0, c0), reference.lstm_recurrence(xw, w, rm, h0, c0)
    else:
        fast, slow = fused.gru_recurrence(xw, w, b, rm, h0), reference.gru_recurrence(xw, w, b, rm, h0)
    (gf,) = torch.autograd.grad(fast[0].sum(), w)
    (gs,) = torch.autograd.grad(slow[0].sum(), w)
    assert torch.allclose(gf, gs, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("blocks", [0, 3])
@pytest.mark.parametrize("grad", [True, False])
def test_the_input_bias_added_in_the_kernel_equals_it_added_to_xw_bit_for_bit(kind, dtype, blocks, grad, row_blocks):
    """b_in, added as the steps read xw, gives the bits of xw + b_in (the layers' projection before), and the
    gradient autograd gives b_in through that addition."""
    xw, w, b, rm, h0, c0, step = inputs(kind, dtype)
    b_in = torch.randn(b.shape, dtype=dtype, generator=torch.Generator().manual_seed(9)).requires_grad_()
    row_blocks(blocks)
    for st in (None, step):
        results = []
        for fused_bias in (True, False):
            leaves = [t.detach().requires_grad_(grad) for t in (xw, w, b_in, h0, c0)]
            x, ww, bi, h, c = leaves
            with torch.set_grad_enabled(grad):
                args = (x, bi) if fused_bias else (x + bi.view(-1, 1, 1, x.shape[-1]), None)
                if kind == "lstm":
                    out = fused.lstm_recurrence(args[0], ww, rm, h, c, st, b_in=args[1])
                else:
                    out = fused.gru_recurrence(args[0], ww, b, rm, h, st, b_in=args[1])
            got = [t.detach() for t in out]
            if grad:
                sum(o.square().sum() for o in out).backward()
                got += [t.grad for t in leaves if t.grad is not None]
            results.append(got)
        assert len(results[0]) == len(results[1])
        for a, e in zip(*results, strict=True):
            assert torch.equal(a, e)


@needs_kernel
def test_a_wrong_input_bias_is_refused():
    xw, w, b, rm, h0, c0, step = inputs("lstm", torch.float32)
    with pytest.raises(ValueError, match=r"'b_in': expected a CPU float32 tensor of shape \(20,\)"):
        fused.lstm_recurrence(xw, w, rm, h0, c0, b_in=torch.zeros(21))
    with pytest.raises(ValueError, match=r"'b_in': expected a CPU float32 tensor of shape \(15,\)"):
        fused.gru_recurrence(xw[:3], w[:15], b[:15], rm[:3], h0, b_in=torch.zeros(15, dtype=torch.float64))


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("H", [16, 256])  # the products on MKL's batched GEMM (h(t-1) shared) or on oneDNN (copies)
@pytest.mark.parametrize("blocks", [1, 2])
def test_an_all_ones_mask_without_gradients_gives_the_bits_of_the_training_forward(kind, H, blocks, row_blocks):
    g = torch.Generator().manual_seed(5)
    G, T, B = (4 if kind == "lstm" else 3), 4, 32
    r = lambda *s: torch.randn(*s, generator=g) * 0.1  # noqa: E731
    xw, w, b, h0, c0 = r(G, T, B, H), r(G * H, H), r(G * H), r(B, H), r(B, H)
    ones = torch.ones(G, B, H)
    row_blocks(blocks)

    def run():
        if kind == "lstm":
            return fused.lstm_recurrence(xw, w, ones, h0, c0, zoneout_h=0.9, zoneout_c=0.9)
        return fused.gru_recurrence(xw, w, b, ones, h0, zoneout_h=0.9)

    with torch.no_grad():
        light = run()
    w.requires_grad_()  # the forward that keeps the backward's tensors never shares h(t-1)
    saving = run()
    for a, s in zip(light, saving, strict=True):
        assert torch.equal(a, s.detach())


def one_sequence(kind, H, keep, seed, T=9):
    g = torch.Generator().manual_seed(seed)
    G = 4 if kind == "lstm" else 3
    r = lambda *s: torch.randn(*s, generator=g) * 0.5  # noqa: E731
    rm = (torch.rand(G, 1, H, generator=g) < keep).float() / keep
    w = r(G * H, H) * (keep / H) ** 0.5  # pre-activations of order 1 whatever the mask's scale: a stable recurrence
    return r(G, T, 1, H), w, r(G * H), rm, r(1, H), r(1, H)


def run_one(kind, xw, w, b, rm, h0, c0, zh=None, zc=None, step=None):
    if kind == "lstm":
        return fused.lstm_recurrence(xw, w, rm, h0, c0, step, zh, zc)
    return fused.gru_recurrence(xw, w, b, rm, h0, step, zh)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("H", [1, 15, 16, 17, 33, 64, 100, 129, 200])  # full panels, vectors and the last columns
@pytest.mark.parametrize("keep", [0.05, 0.5, 0.7])
def test_one_sequence_without_gradients_multiplies_its_kept_units_only_to_the_same_outputs(kind, H, keep):
    # B = 1 in inference: each step's products read W_hh's rows of the units the recurrent mask keeps (csrc/gemm.cpp,
    # kept_unit_products); the outputs equal the training forward's (the dense product) and the reference loop's
    xw, w, b, rm, h0, c0 = one_sequence(kind, H, keep, seed=H)
    zh, zc = zoneout("train", torch.float32, T=9, B=1, H=H)
    for zone in ((None, None), (zh, zc)):
        with torch.no_grad():
            light = run_one(kind, xw, w, b, rm, h0, c0, *zone)
        w.requires_grad_()
        dense = run_one(kind, xw, w, b, rm, h0, c0, *zone)
        w.requires_grad_(False)
        if kind == "lstm":
            ref = reference.lstm_recurrence(xw, w, rm, h0, c0, None, *zone)
        else:
            ref = reference.gru_recurrence(xw, w, b, rm, h0, None, zone[0])
        for a, d, r in zip(light, dense, ref, strict=True):
            torch.testing.assert_close(a, d.detach(), atol=1e-5, rtol=1e-5)  # float32 sums in another order
            torch.testing.assert_close(a, r.detach(), atol=1e-5, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_one_sequence_keeping_most_units_or_with_a_nan_weight_takes_the_dense_products(kind):
    # above 3/4 of the units kept the dense product is as fast: the bits of the training forward; a nan weight in a
    # dropped unit's row makes every later pre-activation nan in the dense product (0 * nan), and so it does here
    xw, w, b, rm, h0, c0 = one_sequence(kind, 40, 0.9, seed=1)
    with torch.no_grad():
        light = run_one(kind, xw, w, b, rm, h0, c0)
    w.requires_grad_()
    dense = run_one(kind, xw, w, b, rm, h0, c0)
    w.requires_grad_(False)
    assert all(torch.equal(a, d.detach()) for a, d in zip(light, dense, strict=True))
    xw, w, b, rm, h0, c0 = one_sequence(kind, 40, 0.5, seed=2)
    dropped = int((rm[:, 0].sum(0) == 0).nonzero()[0])  # a unit every gate drops
    w[:, dropped] = float("nan")
    with torch.no_grad():
        light = run_one(kind, xw, w, b, rm, h0, c0)
    dense = reference.lstm_recurrence(xw, w, rm, h0, c0) if kind == "lstm" else None
    if dense is None:
        dense = reference.gru_recurrence(xw, w, b, rm, h0)
    assert light[0][1:].isnan().all()  # from the second step on, as the dense product gives
    assert torch.equal(light[0].isnan(), dense[0].isnan())


@needs_kernel
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("zone", [None, "train"])
@pytest.mark.parametrize("padded", [False, True])
def test_an_output_without_a_gradient_gives_the_bits_of_a_zero_gradient_without_writing_one(kind, zone, padded,
                                                                                           monkeypatch):  # fmt: skip
    # a classifier uses only the final h: the output's gradient is one step of zeros that the kernel reads every step
    xw, w, b, rm, h0, c0, step = inputs(kind, torch.float32)
    st = step if padded else None
    zh, zc = zoneout(zone, torch.float32)
    name = "_lstm_backward" if kind == "lstm" else "_gru_backward"
    seen = []
    real = getattr(fused, name)
    monkeypatch.setattr(fused, name, lambda dout, *rest: seen.append(tuple(dout.shape)) or real(dout, *rest))

    def run():
        if kind == "lstm":
            return fused.lstm_recurrence(xw, w, rm, h0, c0, st, zh, zc), [xw, w, h0, c0]
        return fused.gru_recurrence(xw, w, b, rm, h0, st, zh), [xw, w, b, h0]

    (out, h, *_), leaves = run()
    unused = torch.autograd.grad(h.sum(), leaves)
    (out, h, *_), leaves = run()
    zero = torch.autograd.grad(h.sum() + (out * 0).sum(), leaves)  # a (T, B, H) of zeros as the output's gradient
    T, B, H = out.shape
    assert seen == [(1, B, H), (T, B, H)]
    for a, z in zip(unused, zero, strict=True):
        assert torch.equal(a, z)

"""The fused CPU LSTM and GRU recurrences (``csrc/lstm.cpp``, ``csrc/gru.cpp``) as torch custom ops with
autograd: per-gate recurrent masks, zoneout and padded steps, the same contract as :mod:`embdrop.kernels.reference`."""

from __future__ import annotations

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.kernels import build
from embdrop.kernels.first_order import first_order


def _step(step: Tensor | None) -> Tensor:
    return torch.empty(0, dtype=torch.bool) if step is None else step.contiguous()


def needs_saving(*inputs: Tensor | None) -> bool:
    """Whether the forward keeps what the backward needs: only when a gradient will be asked for (inference and
    MC-dropout predictions run without it, in memory that does not grow with T). The GPU kernels ask it too."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)


def _zoneout_factors(z: Tensor | float | None, like: Tensor) -> Tensor:
    """Zoneout factors for the kernel: the (T, B, H) update mask, the eval expectation 1 - p as (1, B, H), or an
    empty tensor for no zoneout; ``like`` is the (T, B, H) output's first step, (B, H)."""
    if z is None:
        return like.new_empty(0)
    if isinstance(z, Tensor):  # (T, B, H), transposed from the drawn (B, T, H): in eager, copied into the pool
        z = z.to(like.dtype)
        return build.extension().pooled_contiguous(z) if build.eager() else z.contiguous()
    return torch.full((1, *like.shape), float(z), dtype=like.dtype)


def _check_zone(name: str, z, T: int, B: int, H: int, dtype: torch.dtype) -> None:
    """Zoneout factors: an empty tensor (none), (T, B, H) masks or (1, B, H) expectations."""
    if isinstance(z, Tensor) and z.numel() == 0:
        return
    rows = 1 if isinstance(z, Tensor) and z.dim() == 3 and z.shape[0] == 1 else T
    build.expect(name, z, (rows, B, H), (dtype,))


def _check_inputs(gates: int, xw, w_hh, rmask, h0, c0, step, b_hh=None, zh=None, zc=None, b_in=None, oshift=None):
    """The forward ops' arguments: the kernel reads raw pointers, so a wrong shape would read out of bounds."""
    if not isinstance(xw, Tensor) or xw.dim() != 4 or xw.shape[0] != gates:
        got = _checks.describe(xw) if isinstance(xw, Tensor) else type(xw).__name__
        raise _checks.invalid("xw", f"a tensor of shape (G, T, B, H) with G = {gates}", got)
    _, T, B, H = xw.shape
    if T < 1 or H < 1:
        raise _checks.invalid("xw", "T >= 1 and H >= 1 in (G, T, B, H) (a layer returns its initial state for T = 0)",
                              _checks.describe(xw))  # fmt: skip
    real = (torch.float32, torch.float64)
    build.expect("xw", xw, tuple(xw.shape), real)
    build.expect("w_hh", w_hh, (gates * H, H), (xw.dtype, torch.bfloat16, torch.float16))
    build.expect("rmask", rmask, (gates, B, H), (xw.dtype,))
    build.expect("h0", h0, (B, H), (xw.dtype,))
    if c0 is not None:
        build.expect("c0", c0, (B, H), (xw.dtype,))
    for name, b in (("b_hh", b_hh), ("b_in", b_in)):
        if b is not None and b.numel() > 0:
            build.expect(name, b, (gates * H,), (xw.dtype,))
    if step.numel() > 0:
        build.expect("step", step, (T, B), (torch.bool,))
    for name, z in (("zoneout_h", zh), ("zoneout_c", zc)):
        if z is not None:
            _check_zone(name, z, T, B, H, xw.dtype)
    if oshift is not None and oshift.numel() > 0:
        _check_shift(oshift, T, B)


def _check_shift(oshift, T: int, B: int) -> None:
    """(B,) int64 rotations of the output in [0, T): the kernels write each row's step t at (t + shift) % T."""
    build.expect("oshift", oshift, (B,), (torch.int64,))
    if not _checks.tracing() and bool(((oshift < 0) | (oshift >= T)).any()):
        raise _checks.invalid("oshift", f"rotations in [0, {T})", _checks.describe(oshift))


def _shift(oshift: Tensor | None) -> Tensor:
    return torch.empty(0, dtype=torch.int64) if oshift is None else oshift.contiguous()


def _check_grads(name: str, t, like: Tensor) -> None:
    build.expect(name, t, tuple(like.shape), (like.dtype,))


def _dout_like(dout, states: Tensor) -> Tensor:
    """The shape the backward ops take for the output's gradient: (T, B, H), or (1, B, H), one step that the kernels
    read at every step (the zeros given when the output got no gradient: no (T, B, H) of zeros is written)."""
    one = isinstance(dout, Tensor) and dout.dim() == 3 and dout.shape[0] == 1 and states.shape[0] > 2
    return states[:1] if one else states[1:]


def _check_saved(G: int, states, w_hh, rmask, hm, gates, last, step, zones=()) -> None:
    """The backward ops' saved tensors, from the states ``(T + 1, B, H)`` (cs for LSTM, hs for GRU): the kernel
    reads them by raw pointers too."""
    if not isinstance(states, Tensor) or states.dim() != 3 or states.shape[0] < 2:
        got = _checks.describe(states) if isinstance(states, Tensor) else type(states).__name__
        raise _checks.invalid("states", "a tensor of shape (T + 1, B, H) with T >= 1 (the forward op's output)", got)
    T, B, H = states.shape[0] - 1, states.shape[1], states.shape[2]
    dt = (states.dtype,)
    build.expect("states", states, tuple(states.shape), (torch.float32, torch.float64))
    build.expect("w_hh", w_hh, (G * H, H), (states.dtype, torch.bfloat16, torch.float16))
    build.expect("rmask", rmask, (G, B, H), dt)
    build.expect("hm", hm, (G, T, B, H), dt)
    build.expect("gates", gates, (T, G, B, H), dt)
    build.expect("tcs" if G == 4 else "hpn", last, (T, B, H), dt)
    if not isinstance(step, Tensor) or step.numel() > 0:
        build.expect("step", step, (T, B), (torch.bool,))
    for name, z in zip(("zoneout_h", "zoneout_c"), zones, strict=False):
        _check_zone(name, z, T, B, H, states.dtype)


# The kernel is registered as torch.library custom ops (with fake implementations for tracing and an autograd
# formula), so torch.compile keeps models that use it in one graph instead of breaking at a pybind call.
# Outputs of the forward ops: the layer's outputs first, then what the backward needs.


# b_in: the input projection's bias (G * H,), added as the steps read xw (xw comes without it), or None.


@torch.library.custom_op("embdrop::lstm_forward", mutates_args=())
def _lstm_forward(
    xw: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    h0: Tensor,
    c0: Tensor,
    step: Tensor,
    zh: Tensor,
    zc: Tensor,
    save: bool,
    b_in: Tensor | None = None,
    oshift: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check_inputs(4, xw, w_hh, rmask, h0, c0, step, zh=zh, zc=zc, b_in=b_in, oshift=oshift)
    if (zh.numel() > 0) != (zc.numel() > 0):
        raise _checks.invalid("zc", "zoneout factors for c exactly when there are some for h", _checks.describe(zc))
    out, hs, cs, hm, gates, tcs = build.extension().lstm_forward(
        xw.contiguous(), w_hh.contiguous(), rmask.contiguous(), h0.contiguous(), c0.contiguous(), step, zh, zc, save,
        _bias(b_in, xw), _shift(oshift),
    )  # fmt: skip
    # the final h alone (1, B, H): the backward needs no h history, and a (T + 1, B, H) output read at its last step
    # costs a zero-filled (T + 1, B, H) gradient every backward (autograd's select backward)
    return out, _final(hs), cs, hm, gates, tcs


def _final(hs: Tensor) -> Tensor:
    """The last state of a (S, B, H) history as a new (1, B, H) tensor (a custom op's outputs may not alias)."""
    return hs[-1:].clone()


def _bias(b: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if b is None else b.contiguous()


def _bias_grad(ctx, dxw: Tensor) -> Tensor | None:
    """The input bias's gradient: dxw (G, T, B, H) summed over T and B, as autograd summed it for ``xw + b``."""
    if not ctx.bias_grad:
        return None
    G, T, B, H = dxw.shape
    return dxw.reshape(G, T * B, H).sum(1).reshape(G * H)


@_lstm_forward.register_fake
def _(xw, w_hh, rmask, h0, c0, step, zh, zc, save, b_in=None, oshift=None):
    _check_inputs(4, xw, w_hh, rmask, h0, c0, step, zh=zh, zc=zc, b_in=b_in, oshift=oshift)
    G, T, B, H = xw.shape
    e, S = xw.new_empty, T if save else 1
    states = T + 1 if save else 1
    return e(T, B, H), e(1, B, H), e(states, B, H), e(4, S, B, H), e(S, 4, B, H), e(S, B, H)


@torch.library.custom_op("embdrop::lstm_backward", mutates_args=())
def _lstm_backward(
    dout: Tensor,
    dh: Tensor,
    dc: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    cs: Tensor,
    hm: Tensor,
    gates: Tensor,
    tcs: Tensor,
    step: Tensor,
    zh: Tensor,
    zc: Tensor,
    oshift: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_saved(4, cs, w_hh, rmask, hm, gates, tcs, step, (zh, zc))
    if oshift is not None and oshift.numel() > 0:
        _check_shift(oshift, gates.shape[0], gates.shape[2])
    for name, t, like in (("dout", dout, _dout_like(dout, cs)), ("dh", dh, cs[0]), ("dc", dc, cs[0])):
        _check_grads(name, t, like)
    dxw, dw, dh0, dc0 = build.extension().lstm_backward(
        dout.contiguous(),
        dh.contiguous(),
        dc.contiguous(),
        w_hh.contiguous(),
        rmask.contiguous(),
        cs,
        hm,
        gates,
        tcs,
        step,
        zh,
        zc,
        _shift(oshift),
    )
    return dxw, dw, dh0, dc0


@_lstm_backward.register_fake
def _(dout, dh, dc, w_hh, rmask, cs, hm, gates, tcs, step, zh, zc, oshift=None):
    return hm.new_empty(hm.shape), w_hh.new_empty(w_hh.shape), dh.new_empty(dh.shape), dc.new_empty(dc.shape)


def _lstm_setup(ctx, inputs, output):
    xw, w_hh, rmask, h0, c0, step, zh, zc, save, b_in, oshift = inputs
    out, hs, cs, hm, gates, tcs = output
    ctx.set_materialize_grads(False)  # the saved-for-backward outputs get no gradient: no zero tensors for them
    ctx.bias_grad = b_in is not None and b_in.requires_grad
    ctx.save_for_backward(w_hh, rmask, cs, hm, gates, tcs, step, zh, zc, oshift)


def _lstm_grad(ctx, dout, dhs, dcs, *unused):
    w_hh, rmask, cs, hm, gates, tcs, step, zh, zc, oshift = ctx.saved_tensors
    dout = torch.zeros_like(cs[:1]) if dout is None else dout  # no gradient for the output: one step of zeros
    dh = torch.zeros_like(cs[0]) if dhs is None else dhs[-1]  # only the final h (1, B, H) and c are layer outputs
    dc = torch.zeros_like(cs[0]) if dcs is None else dcs[-1]
    dxw, dw, dh0, dc0 = _lstm_backward(dout, dh, dc, w_hh, rmask, cs, hm, gates, tcs, step, zh, zc, oshift)
    dxw, dw, dh0, dc0 = first_order("the LSTM's recurrence", (dxw, dw, dh0, dc0), dout, dh, dc, w_hh, cs)
    return dxw, dw, None, dh0, dc0, None, None, None, None, _bias_grad(ctx, dxw), None


_lstm_forward.register_autograd(_lstm_grad, setup_context=_lstm_setup)


@torch.library.custom_op("embdrop::gru_forward", mutates_args=())
def _gru_forward(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor,
    rmask: Tensor,
    h0: Tensor,
    step: Tensor,
    zh: Tensor,
    save: bool,
    b_in: Tensor | None = None,
    oshift: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check_inputs(3, xw, w_hh, rmask, h0, None, step, b_hh, zh=zh, b_in=b_in, oshift=oshift)
    out, hs, hm, gates, hpn = build.extension().gru_forward(
        xw.contiguous(), w_hh.contiguous(), b_hh.contiguous(), rmask.contiguous(), h0.contiguous(), step, zh, save,
        _bias(b_in, xw), _shift(oshift),
    )  # fmt: skip
    return out, _final(hs), hs, hm, gates, hpn  # the final h on its own, as for the LSTM (hs is saved)


@_gru_forward.register_fake
def _(xw, w_hh, b_hh, rmask, h0, step, zh, save, b_in=None, oshift=None):
    _check_inputs(3, xw, w_hh, rmask, h0, None, step, b_hh, zh=zh, b_in=b_in, oshift=oshift)
    G, T, B, H = xw.shape
    e, S = xw.new_empty, T if save else 1
    return e(T, B, H), e(1, B, H), e(T + 1 if save else 1, B, H), e(3, S, B, H), e(S, 3, B, H), e(S, B, H)


@torch.library.custom_op("embdrop::gru_backward", mutates_args=())
def _gru_backward(
    dout: Tensor,
    dh: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    hs: Tensor,
    hm: Tensor,
    gates: Tensor,
    hpn: Tensor,
    step: Tensor,
    zh: Tensor,
    oshift: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_saved(3, hs, w_hh, rmask, hm, gates, hpn, step, (zh,))
    if oshift is not None and oshift.numel() > 0:
        _check_shift(oshift, gates.shape[0], gates.shape[2])
    for name, t, like in (("dout", dout, _dout_like(dout, hs)), ("dh", dh, hs[0])):
        _check_grads(name, t, like)
    dxw, dw, db, dh0 = build.extension().gru_backward(
        dout.contiguous(), dh.contiguous(), w_hh.contiguous(), rmask.contiguous(), hs, hm, gates, hpn, step, zh,
        _shift(oshift),
    )  # fmt: skip
    return dxw, dw, db, dh0


@_gru_backward.register_fake
def _(dout, dh, w_hh, rmask, hs, hm, gates, hpn, step, zh, oshift=None):
    H = dh.shape[-1]
    return hm.new_empty(hm.shape), w_hh.new_empty(w_hh.shape), hm.new_empty(3 * H), dh.new_empty(dh.shape)


def _gru_setup(ctx, inputs, output):
    xw, w_hh, b_hh, rmask, h0, step, zh, save, b_in, oshift = inputs
    out, h_last, hs, hm, gates, hpn = output
    ctx.set_materialize_grads(False)
    ctx.bias_grad = b_in is not None and b_in.requires_grad
    ctx.has_bias = b_hh.numel() > 0
    ctx.save_for_backward(w_hh, rmask, hs, hm, gates, hpn, step, zh, oshift)


def _gru_grad(ctx, dout, dh_last, *unused):
    w_hh, rmask, hs, hm, gates, hpn, step, zh, oshift = ctx.saved_tensors
    dout = torch.zeros_like(hs[:1]) if dout is None else dout  # no gradient for the output: one step of zeros
    dh = torch.zeros_like(hs[0]) if dh_last is None else dh_last[-1]
    dxw, dw, db, dh0 = _gru_backward(dout, dh, w_hh, rmask, hs, hm, gates, hpn, step, zh, oshift)
    dxw, dw, db, dh0 = first_order("the GRU's recurrence", (dxw, dw, db, dh0), dout, dh, w_hh, hs)
    return dxw, dw, (db if ctx.has_bias else None), None, dh0, None, None, None, _bias_grad(ctx, dxw), None


_gru_forward.register_autograd(_gru_grad, setup_context=_gru_setup)


def lstm_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    rmask: Tensor,
    h0: Tensor,
    c0: Tensor,
    step: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    zoneout_c: Tensor | float | None = None,
    b_in: Tensor | None = None,
    out_shift: Tensor | None = None,
):
    """Same contract as :func:`embdrop.kernels.reference.lstm_recurrence`; ``rmask`` is required (all ones for
    none). ``b_in`` (G * H,): the input projection's bias when ``xw`` comes without it (the kernel adds it as it
    reads xw); None when xw holds it or there is none. ``out_shift`` (B,) int64 in [0, T): row b of the output
    (and of its gradient) rotated forward by out_shift[b] along T, as the kernel writes it (pre-padded rows put
    back); None for none.

    ``w_hh`` may come in a lower precision than ``xw`` (bfloat16 under ``torch.autocast``): the recurrent matrix
    products then run in that precision and the rest in ``xw``'s (see ``csrc/lstm.cpp``)."""
    zh, zc = _zoneout_factors(zoneout_h, h0), _zoneout_factors(zoneout_c, h0)
    save = needs_saving(xw, w_hh, h0, c0, b_in)
    out, h_last, cs, *_ = _lstm_forward(xw, w_hh, rmask, h0, c0, _step(step), zh, zc, save, b_in, out_shift)
    return out, h_last[-1], cs[-1]


def gru_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor,
    h0: Tensor,
    step: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    b_in: Tensor | None = None,
    out_shift: Tensor | None = None,
):
    """Same contract as :func:`embdrop.kernels.reference.gru_recurrence` (``reset_after=True``); ``rmask`` is
    required (all ones for none); ``b_in``, ``out_shift`` as for :func:`lstm_recurrence` (b_ih)."""
    b = b_hh if b_hh is not None else xw.new_empty(0)
    zh = _zoneout_factors(zoneout_h, h0)
    save = needs_saving(xw, w_hh, b, h0, b_in)
    out, h_last, *_ = _gru_forward(xw, w_hh, b, rmask, h0, _step(step), zh, save, b_in, out_shift)
    return out, h_last[-1]


for _op in (_lstm_forward, _lstm_backward, _gru_forward, _gru_backward):
    build.no_dynamo_import_until_needed(_op)

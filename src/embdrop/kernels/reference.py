"""Reference recurrences: plain PyTorch, one step at a time, differentiated by autograd.

Conventions shared with :mod:`embdrop.kernels.recurrence`:

- ``xw`` (G, T, B, H): input projection per gate, biases of the input side included (for LSTM both biases).
  Gates in torch's order, as ``nn.LSTM``/``nn.GRU`` store them: LSTM i, f, g, o; GRU r, z, n.
- ``w_hh`` (G*H, H) in the same gate order; ``rmask`` (G, B, H), already scaled by 1/(1-p), or None.
- ``step_mask`` (T, B) bool or None: where False, the step leaves h (and c) untouched and outputs zero.
- Returns ``out`` (T, B, H) and the final state.

Each cell is one step written once; :func:`_over_time` runs it over T, as a Python loop, or with ``scan=True``
(``torch.export`` of an eval-mode layer) as torch's ``scan`` (``torch._higher_order_ops.scan``): a loop traced into
the program with T left symbolic, so an exported recurrence takes any sequence length (torch's own LSTM op fixes T
in an exported program). ONNX export writes a ``Scan`` node for it. Under ``scan`` the weights the steps capture are
detached copies: an exported eval program is not differentiated, and torch 2.13's ONNX exporter fails on a scan
whose captured tensors require gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _recurrent(w: Tensor, rmask: Tensor | None, gates: int, scan: bool = False):
    """The recurrent product of a step, h (B, H) -> (G, B, H): gate k gets (h * rmask[k]) @ W_k^T, ``w`` (G*H, H);
    one product of the shared h when there is no mask. The weights are laid out once, before the steps.

    ``scan``: 2-D products of detached contiguous copies only. Inside ``scan`` torch 2.13 refuses captured tensors
    that alias one another (``w`` and ``w.T``), and ONNX conversion fails on a batched product or a size read from
    h."""
    H = w.shape[-1]
    if rmask is None:
        wt = _captured(w.T) if scan else w.T  # (H, G*H)
        return lambda h: (h @ wt).view(-1, gates, H).transpose(0, 1)
    if scan:
        pairs = [(_captured(rmask[k]), _captured(w[k * H : (k + 1) * H].T)) for k in range(gates)]
        return lambda h: torch.stack([(h * m) @ wk for m, wk in pairs])
    wt = w.view(gates, H, H).transpose(1, 2)  # (G, H_in, H_out)
    return lambda h: torch.bmm(h.unsqueeze(0) * rmask, wt)


def _captured(t: Tensor | None) -> Tensor | None:
    """A tensor the steps under ``scan`` capture: detached, contiguous, its own storage."""
    return None if t is None else t.detach().contiguous().clone()


def _zoned(new: Tensor, old: Tensor, update: Tensor | float) -> Tensor:
    """Zoneout with an update keep-mask: the new value where ``update`` is 1, the old one where it is 0
    (training); a float ``update`` = 1 - p mixes them by their expectation (eval)."""
    if isinstance(update, Tensor):
        return torch.where(update.bool(), new, old)
    return old + (new - old) * update


def _time_major(zoneout: Tensor | float | None) -> Tensor | None:
    """A (T, B, H) zoneout mask as a per-step input; None for a float (a constant) or no zoneout."""
    return zoneout if isinstance(zoneout, Tensor) else None


def _over_time(cell: Callable, state: tuple[Tensor, ...], steps: dict[str, Tensor | None], T, scan: bool) -> tuple:
    """Run ``cell(state, step) -> (state, out)`` over T steps; ``steps`` holds the per-step inputs, time first
    (absent ones are None). Returns (outputs (T, ...), the final state)."""
    steps = {k: v for k, v in steps.items() if v is not None}
    if scan and not (isinstance(T, int) and T == 1):  # one step (a decoder's) needs no loop
        from torch._higher_order_ops.scan import scan as torch_scan

        keys = list(steps)

        def body(carry, xs):
            new, out = cell(tuple(carry), dict(zip(keys, xs, strict=True)))
            return list(new), out.clone()  # scan's outputs may not alias its carry

        # detached copies in: a view (a slice of the stacked initial state, a transposed projection) makes scan's
        # tracer give its base's sizes symbols of their own and specialize the batch; a list of steps or a tensor
        # that requires gradients fails in the ONNX exporter
        _forget_past_scans(torch_scan)
        final, outs = torch_scan(body, [_captured(s) for s in state], tuple(_captured(steps[k]) for k in keys))
        return outs, tuple(final)
    outs = []
    for t in range(T):
        state, out = cell(state, {k: v[t] for k, v in steps.items()})
        outs.append(out)
    return torch.stack(outs), state


def _forget_past_scans(torch_scan: Callable) -> None:
    """Clear what torch 2.13 compiled of ``scan``'s inner function on earlier calls. It keeps it on that function's
    code object, shared by every scan, and checks its guards on the next export: one export with a fixed length
    50, then one with a dynamic length, fails with "the generated guard 50 != L['x'].size()[1]". A private API:
    where it is gone, nothing is cleared."""
    import types

    reset = getattr(getattr(torch._C, "_dynamo", None), "eval_frame", None)
    reset = getattr(reset, "reset_code", None)
    if reset is None:
        return
    for const in torch_scan.__code__.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == "run_flattened_scan":
            reset(const)


def _keep_padded(new: tuple[Tensor, ...], old: tuple[Tensor, ...], step: dict):
    """Padded rows (step mask False) keep their state and output zeros: (state, output)."""
    if "valid" not in step:
        return new, new[0]
    v = step["valid"].unsqueeze(1)  # (B, 1)
    kept = tuple(torch.where(v, n, o) for n, o in zip(new, old, strict=True))
    return kept, kept[0] * v


def lstm_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    rmask: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    step_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    zoneout_c: Tensor | float | None = None,
    *,
    scan: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM over T steps. zoneout_h/zoneout_c: (T, B, H) update keep-masks in training (1: take the new value,
    0: keep the previous one), the float 1 - p at eval, or None."""
    T = xw.shape[1]
    if T == 0:  # no step: an empty output and the initial state
        return xw.new_zeros(0, *h0.shape), h0, c0

    product = _recurrent(w_hh, rmask, 4, scan)

    def cell(state, step):
        h, c = state
        pre = step["xw"] + product(h)  # (4, B, H): i, f, g, o
        i, f = torch.sigmoid(pre[:2]).unbind(0)
        g = torch.tanh(pre[2])
        o = torch.sigmoid(pre[3])
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        if zoneout_c is not None:
            c_new = _zoned(c_new, c, step.get("zc", zoneout_c))
            h_new = _zoned(h_new, h, step.get("zh", zoneout_h))
        return _keep_padded((h_new, c_new), state, step)

    steps = {"xw": xw.transpose(0, 1), "valid": step_mask, "zh": _time_major(zoneout_h), "zc": _time_major(zoneout_c)}
    out, (h, c) = _over_time(cell, (h0, c0), steps, T, scan)
    return out, h, c


def gru_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor | None,
    h0: Tensor,
    step_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    reset_after: bool = True,
    *,
    scan: bool = False,
) -> tuple[Tensor, Tensor]:
    """GRU (PyTorch's form, Keras' ``reset_after=True``): n = tanh(x_n + r * (U_n (h*m_n) + b_hn)),
    h = (1 - z) * n + z * h(t-1), where the last h(t-1) is the undropped one. ``reset_after=False`` (Cho et al.'s
    original, Keras' ``reset_after=False``): n = tanh(x_n + U_n (r * h*m_n) + b_hn)."""
    T = xw.shape[1]
    if T == 0:
        return xw.new_zeros(0, *h0.shape), h0
    H = h0.shape[-1]
    own = _captured if scan else lambda t: t  # noqa: E731
    b_r = None if b_hh is None else own(b_hh.view(3, 1, H))
    if reset_after:
        product = _recurrent(w_hh, rmask, 3, scan)
    else:  # r and z from h; the new gate's product after the reset
        product = _recurrent(w_hh[: 2 * H], None if rmask is None else rmask[:2], 2, scan)
        m_n = None if rmask is None else own(rmask[2])
        w_n = own(w_hh[2 * H :].T)  # (H_in, H_out)

    def cell(state, step):
        (h,) = state
        x = step["xw"]  # (3, B, H)
        if reset_after:
            hp = product(h)  # (3, B, H)
            if b_r is not None:
                hp = hp + b_r
            r, z = torch.sigmoid(x[:2] + hp[:2]).unbind(0)
            n = torch.tanh(x[2] + r * hp[2])
        else:
            hp = product(h)  # (2, B, H): r, z
            if b_r is not None:
                hp = hp + b_r[:2]
            r, z = torch.sigmoid(x[:2] + hp).unbind(0)
            hn = r * (h if m_n is None else h * m_n)  # (B, H): the reset applied before the product
            n = torch.tanh(x[2] + hn @ w_n + (0 if b_r is None else b_r[2]))
        h_new = (1 - z) * n + z * h
        if zoneout_h is not None:
            h_new = _zoned(h_new, h, step.get("zh", zoneout_h))
        return _keep_padded((h_new,), state, step)

    steps = {"xw": xw.transpose(0, 1), "valid": step_mask, "zh": _time_major(zoneout_h)}
    out, (h,) = _over_time(cell, (h0,), steps, T, scan)
    return out, h


def rnn_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor | None,
    h0: Tensor,
    step_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    *,
    scan: bool = False,
) -> tuple[Tensor, Tensor]:
    """Elman RNN (Keras' SimpleRNN, torch's RNN with tanh): h = tanh(x_h + U (h(t-1)*m) + b_hh)."""
    T = xw.shape[1]
    if T == 0:
        return xw.new_zeros(0, *h0.shape), h0

    product = _recurrent(w_hh, rmask, 1, scan)
    b_hh = _captured(b_hh) if scan else b_hh

    def cell(state, step):
        (h,) = state
        pre = step["xw"][0] + product(h)[0]  # (B, H)
        h_new = torch.tanh(pre if b_hh is None else pre + b_hh)
        if zoneout_h is not None:
            h_new = _zoned(h_new, h, step.get("zh", zoneout_h))
        return _keep_padded((h_new,), state, step)

    steps = {"xw": xw.transpose(0, 1), "valid": step_mask, "zh": _time_major(zoneout_h)}
    out, (h,) = _over_time(cell, (h0,), steps, T, scan)
    return out, h

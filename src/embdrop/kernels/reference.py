"""Reference recurrences: plain PyTorch, one step at a time, differentiated by autograd.

Conventions shared with :mod:`embdrop.kernels.cpu`:

- ``xw`` (G, T, B, H): input projection per gate, biases of the input side included (for LSTM both biases).
  LSTM gate order here is i, f, o, g (sigmoids first, so one call covers them); GRU is r, z, n.
- ``w_hh`` (G*H, H) in the same gate order; ``rmask`` (G, B, H), already scaled by 1/(1-p), or None.
- ``step_mask`` (T, B) bool or None: where False, the step leaves h (and c) untouched and outputs zero.
- Returns ``out`` (T, B, H) and the final state.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _recurrent(h: Tensor, w: Tensor, rmask: Tensor | None, gates: int) -> Tensor:
    """(G, B, H): gate k gets (h * rmask[k]) @ W_k^T; one shared h when there is no mask."""
    H = h.shape[-1]
    wk = w.view(gates, H, H)  # (G, H_out, H_in)
    hm = h.unsqueeze(0) * rmask if rmask is not None else h.unsqueeze(0).expand(gates, -1, -1)  # (G, B, H)
    return torch.bmm(hm, wk.transpose(1, 2))  # (G, B, H)


def _zone(new: Tensor, old: Tensor, update: Tensor | float) -> Tensor:
    """Zoneout with an update keep-mask: the new value where ``update`` is 1, the old one where it is 0
    (training); a float ``update`` = 1 - p mixes them by their expectation (eval)."""
    if isinstance(update, Tensor):
        return torch.where(update.bool(), new, old)
    return old + (new - old) * update


def _advance(h_new: Tensor, h: Tensor, t: int, zoneout_h, step_mask: Tensor | None, outs: list) -> Tensor:
    """The end of a GRU or RNN step: zoneout, then padded rows keep h and output zeros; appends the output (B, H)
    and returns the next h."""
    if zoneout_h is not None:
        h_new = _zone(h_new, h, zoneout_h[t] if isinstance(zoneout_h, Tensor) else zoneout_h)
    if step_mask is None:
        outs.append(h_new)
        return h_new
    v = step_mask[t].unsqueeze(1)  # (B, 1)
    h_new = torch.where(v, h_new, h)
    outs.append(h_new * v)
    return h_new


def lstm_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    rmask: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    step_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    zoneout_c: Tensor | float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM over T steps. zoneout_h/zoneout_c: (T, B, H) update keep-masks in training (1: take the new value,
    0: keep the previous one), the float 1 - p at eval, or None."""
    T = xw.shape[1]
    if T == 0:  # no step: an empty output and the initial state
        return xw.new_zeros(0, *h0.shape), h0, c0
    h, c = h0, c0
    outs = []
    for t in range(T):
        pre = xw[:, t] + _recurrent(h, w_hh, rmask, 4)  # (4, B, H): i, f, o, g
        i, f, o = torch.sigmoid(pre[:3]).unbind(0)
        g = torch.tanh(pre[3])
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        if zoneout_c is not None:
            c_new = _zone(c_new, c, zoneout_c[t] if isinstance(zoneout_c, Tensor) else zoneout_c)
            h_new = _zone(h_new, h, zoneout_h[t] if isinstance(zoneout_h, Tensor) else zoneout_h)
        if step_mask is not None:
            v = step_mask[t].unsqueeze(1)  # (B, 1)
            c_new = torch.where(v, c_new, c)
            h_new = torch.where(v, h_new, h)
            outs.append(h_new * v)
        else:
            outs.append(h_new)
        h, c = h_new, c_new
    return torch.stack(outs), h, c


def gru_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor | None,
    h0: Tensor,
    step_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    reset_after: bool = True,
) -> tuple[Tensor, Tensor]:
    """GRU (PyTorch's form, Keras' ``reset_after=True``): n = tanh(x_n + r * (U_n (h*m_n) + b_hn)),
    h = (1 - z) * n + z * h(t-1), where the last h(t-1) is the undropped one. ``reset_after=False`` (Cho et al.'s
    original, Keras' ``reset_after=False``): n = tanh(x_n + U_n (r * h*m_n) + b_hn)."""
    T = xw.shape[1]
    if T == 0:
        return xw.new_zeros(0, *h0.shape), h0
    H = h0.shape[-1]
    h = h0
    outs = []
    for t in range(T):
        if reset_after:
            hp = _recurrent(h, w_hh, rmask, 3)  # (3, B, H)
            if b_hh is not None:
                hp = hp + b_hh.view(3, 1, H)
            r, z = torch.sigmoid(xw[:2, t] + hp[:2]).unbind(0)
            n = torch.tanh(xw[2, t] + r * hp[2])
        else:
            hp = _recurrent(h, w_hh[: 2 * H], None if rmask is None else rmask[:2], 2)  # (2, B, H): r, z
            if b_hh is not None:
                hp = hp + b_hh[: 2 * H].view(2, 1, H)
            r, z = torch.sigmoid(xw[:2, t] + hp).unbind(0)
            hn = r * (h if rmask is None else h * rmask[2])  # (B, H): the reset applied before the product
            n = torch.tanh(xw[2, t] + hn @ w_hh[2 * H :].T + (0 if b_hh is None else b_hh[2 * H :]))
        h_new = (1 - z) * n + z * h
        h = _advance(h_new, h, t, zoneout_h, step_mask, outs)
    return torch.stack(outs), h


def rnn_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor | None,
    h0: Tensor,
    step_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
) -> tuple[Tensor, Tensor]:
    """Elman RNN (Keras' SimpleRNN, torch's RNN with tanh): h = tanh(x_h + U (h(t-1)*m) + b_hh)."""
    T = xw.shape[1]
    if T == 0:
        return xw.new_zeros(0, *h0.shape), h0
    h = h0
    outs = []
    for t in range(T):
        pre = xw[0, t] + _recurrent(h, w_hh, rmask, 1)[0]  # (B, H)
        h_new = torch.tanh(pre if b_hh is None else pre + b_hh)
        h = _advance(h_new, h, t, zoneout_h, step_mask, outs)
    return torch.stack(outs), h

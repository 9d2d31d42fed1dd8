"""The recurrences' steps as Triton kernels, for the GPU (imported only where Triton is installed).

One launch per step, forward and backward (see :mod:`embdrop.kernels.gpu_recurrence`, which runs them):

- forward step t: a program owns a (BB, BH) tile of (batch rows, hidden units); it computes the tile's four (LSTM)
  or three (GRU) recurrent products ``(h(t-1) * m_k) @ W_k^T``, the gate's mask applied to h as it is loaded (no
  masked copy of h is written), then the point-wise step on the tile: gates, cell, zoneout (its keep-mask hashed
  in the kernel from one key, or read, or the eval expectation), padded rows. The grid tiles the batch and H; the
  launch boundary is the only synchronisation (step t + 1 needs every column of h(t)).
- backward step t: a program owns a (BB, BH) tile of (batch rows, input units); it completes dh(t) for the tile,
  ``sum_k m_k * (dpre_k(t + 1) @ W_k)`` added to what step t + 1 passed on directly, then runs the point-wise
  backward of step t on the same tile, writing dpre(t) for the next launch. The weight gradients are big products
  after the loop (the caller's).

The cells' point-wise work is :mod:`embdrop.kernels.triton_cells`' (layouts and zoneout modes there). The forward
reads W^T as (G, H_in, H_out), the backward W as (G, H_out, H_in), both contiguous, so tiles load along contiguous
rows. Block shapes are powers of two of at least 16 (``tl.dot``'s minimum on real GPUs); ragged edges are masked.
Products accumulate in float32 with operands in W's dtype (bfloat16/float16 under autocast). ``TRITON_INTERPRET=1``
runs the same kernels on CPU tensors.
"""

from __future__ import annotations

import triton
import triton.language as tl

from embdrop.kernels.triton_cells import _dot, gru_point, gru_point_back, lstm_point, lstm_point_back


@triton.jit
def _masked_product(
    acc, h_ptr, rm_ptr, w_ptr, g, B, H, rb, rj, HAS_RM: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr
):
    """acc + (h * m_g) @ M_g over the tile, M_g (H_in, H_out) the g-th block of ``w_ptr`` (G, H, H)."""  # noqa: D403
    mb = rb < B
    mj = rj < H
    for k0 in range(0, H, BK):
        rk = k0 + tl.arange(0, BK)
        mk = rk < H
        a_mask = mb[:, None] & mk[None, :]
        a = tl.load(h_ptr + rb[:, None] * H + rk[None, :], mask=a_mask, other=0.0)
        if HAS_RM:
            a = a * tl.load(rm_ptr + g * B * H + rb[:, None] * H + rk[None, :], mask=a_mask, other=0.0)
        w = tl.load(w_ptr + g * H * H + rk[:, None] * H + rj[None, :], mask=mk[:, None] & mj[None, :], other=0.0)
        acc += _dot(a, w, TF32)
    return acc


@triton.jit
def _product_back(
    acc, d_ptr, d_gate, rm_ptr, w_ptr, g, B, H, rb, ri, HAS_RM: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr
):
    """acc + m_g * (d_g @ W_g) on the tile of (rows, input units ri); d_g (B, H) at d_ptr + g * d_gate, w_ptr
    (G, H_out, H_in)."""  # noqa: D403
    mb = rb < B
    mi = ri < H
    part = tl.zeros(acc.shape, tl.float32)
    for k0 in range(0, H, BK):
        rk = k0 + tl.arange(0, BK)
        mk = rk < H
        d = tl.load(d_ptr + g * d_gate + rb[:, None] * H + rk[None, :], mask=mb[:, None] & mk[None, :], other=0.0)
        w = tl.load(w_ptr + g * H * H + rk[:, None] * H + ri[None, :], mask=mk[:, None] & mi[None, :], other=0.0)
        part += _dot(d, w, TF32)
    if HAS_RM:
        part = part * tl.load(rm_ptr + g * B * H + rb[:, None] * H + ri[None, :], mask=mb[:, None] & mi[None, :],
                              other=0.0)  # fmt: skip
    return acc + part


@triton.jit(do_not_specialize=["t"])
def lstm_forward_step(
    xw_ptr, wt_ptr, rm_ptr, hs_ptr, cs_ptr, out_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr, kc_ptr,
    t, T, B, H, th_h, th_c, z_const,
    HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Step t of the LSTM (gates i, f, g, o): h(t), c(t) into hs[t + 1], cs[t + 1], the output into out[t]."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    m2 = (rb < B)[:, None] & (rj < H)[None, :]
    tile = rb[:, None] * H + rj[None, :]
    h_prev = hs_ptr + t * B * H
    a0 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 0, B, H, rb, rj, HAS_RM, BK, TF32)
    a1 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 1, B, H, rb, rj, HAS_RM, BK, TF32)
    a2 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 2, B, H, rb, rj, HAS_RM, BK, TF32)
    a3 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 3, B, H, rb, rj, HAS_RM, BK, TF32)
    hp = tl.load(h_prev + tile, mask=m2, other=0.0)
    cp = tl.load(cs_ptr + t * B * H + tile, mask=m2, other=0.0)
    lstm_point(a0, a1, a2, a3, hp, cp, t, xw_ptr, hs_ptr, cs_ptr, out_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr,
               zc_ptr, kh_ptr, kc_ptr, T, B, H, th_h, th_c, z_const, rb, rj, m2, HAS_STEP, ZMODE, SAVE)  # fmt: skip


@triton.jit(do_not_specialize=["t"])
def lstm_backward_step(
    dpre_ptr, w_ptr, rm_ptr, dh_ptr, dc_ptr, dout_ptr, hs_ptr, cs_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr,
    kh_ptr, kc_ptr, dh0_ptr,
    t, T, B, H, th_h, th_c, z_const,
    HAS_NEXT: tl.constexpr, POINTWISE: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr,
    ZMODE: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """dh(t) on the tile (from step t + 1's dpre and the direct part in dh_ptr), then step t's point-wise backward:
    dpre(t) into dpre_ptr (G, T, B, H), the direct dh(t - 1) and dc(t - 1) into dh_ptr, dc_ptr. POINTWISE=False
    (t = -1): dh0 into dh0_ptr."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    ri = tl.program_id(1) * BH + tl.arange(0, BH)
    m2 = (rb < B)[:, None] & (ri < H)[None, :]
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    if HAS_NEXT:
        for g in tl.static_range(4):  # gate g of step t + 1 at dpre_ptr + (t + 1) * B * H + g * gs
            dh = _product_back(dh, dpre_ptr + (t + 1) * B * H, gs, rm_ptr, w_ptr, g, B, H, rb, ri, HAS_RM, BK, TF32)
    if not POINTWISE:
        tl.store(dh0_ptr + tile, dh, mask=m2)
    else:
        dc = tl.load(dc_ptr + tile, mask=m2, other=0.0)
        p_i, p_f, p_g, p_o, dh_pass, dc_new = lstm_point_back(
            dh, dc, t, dout_ptr, cs_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr, kc_ptr, dpre_ptr,
            T, B, H, th_h, th_c, z_const, rb, ri, m2, HAS_STEP, ZMODE)  # fmt: skip
        tl.store(dh_ptr + tile, dh_pass, mask=m2)
        tl.store(dc_ptr + tile, dc_new, mask=m2)


@triton.jit(do_not_specialize=["t"])
def gru_forward_step(
    xw_ptr, wt_ptr, b_ptr, rm_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
    t, T, B, H, th_h, z_const,
    HAS_BIAS: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Step t of the GRU (see :func:`embdrop.kernels.triton_cells.gru_point`)."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    m2 = (rb < B)[:, None] & (rj < H)[None, :]
    tile = rb[:, None] * H + rj[None, :]
    h_prev = hs_ptr + t * B * H
    a0 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 0, B, H, rb, rj, HAS_RM, BK, TF32)
    a1 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 1, B, H, rb, rj, HAS_RM, BK, TF32)
    a2 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 2, B, H, rb, rj, HAS_RM, BK, TF32)
    if HAS_BIAS:
        mj = rj < H
        a0 += tl.load(b_ptr + rj, mask=mj, other=0.0)[None, :]
        a1 += tl.load(b_ptr + H + rj, mask=mj, other=0.0)[None, :]
        a2 += tl.load(b_ptr + 2 * H + rj, mask=mj, other=0.0)[None, :]
    hp = tl.load(h_prev + tile, mask=m2, other=0.0)
    gru_point(a0, a1, a2, hp, t, xw_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
              T, B, H, th_h, z_const, rb, rj, m2, HAS_STEP, ZMODE, SAVE)  # fmt: skip


@triton.jit(do_not_specialize=["t"])
def gru_backward_step(
    dpre_ptr, dxn_ptr, w_ptr, rm_ptr, dh_ptr, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dh0_ptr,
    t, T, B, H, th_h, z_const,
    HAS_NEXT: tl.constexpr, POINTWISE: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr,
    ZMODE: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """As :func:`lstm_backward_step` for the GRU; dxn_ptr (T, B, H) receives the gradient of x_n."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    ri = tl.program_id(1) * BH + tl.arange(0, BH)
    m2 = (rb < B)[:, None] & (ri < H)[None, :]
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    if HAS_NEXT:
        for g in tl.static_range(3):
            dh = _product_back(dh, dpre_ptr + (t + 1) * B * H, gs, rm_ptr, w_ptr, g, B, H, rb, ri, HAS_RM, BK, TF32)
    if not POINTWISE:
        tl.store(dh0_ptr + tile, dh, mask=m2)
    else:
        p_r, p_z, p_n, dh_pass = gru_point_back(
            dh, t, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dpre_ptr, dxn_ptr,
            T, B, H, th_h, z_const, rb, ri, m2, HAS_STEP, ZMODE)  # fmt: skip
        tl.store(dh_ptr + tile, dh_pass, mask=m2)

"""The recurrences as single-launch Triton kernels with the time loop inside (imported only where Triton is
installed): a program owns BB rows of the batch and all H units, so that no step waits for another program, and
runs every step itself; h, c, the recurrent masks (fixed over time) and, in the backward, dh and dc stay in
registers from one step to the next. One launch per call forward and one backward, against one per step for
:mod:`embdrop.kernels.triton_steps`; for small H only (all of H in one tile: HP, H rounded up to a power of two,
at most :data:`embdrop.kernels.gpu_recurrence.SEQUENCE_MAX_H`), and only as many programs as row blocks, so it
suits large batches (``EMBDROP_GPU_KERNEL=sequence`` chooses it; see :mod:`embdrop.kernels.gpu_recurrence`).

The layouts, the saved tensors and the arithmetic are those of the step kernels (the backward's outputs are
interchangeable), and so are the zoneout modes.
"""

from __future__ import annotations

import triton
import triton.language as tl

from embdrop.kernels.triton_steps import _dot, _tanh, _zone_factor, _zoned


@triton.jit
def _block(ptr, g, H, rk, rj, mk, mj):
    """Block g of a (G, H, H) matrix, rows rk and columns rj, as an (HP, HP) tile (zeros outside H)."""
    return tl.load(ptr + g * H * H + rk[:, None] * H + rj[None, :], mask=mk[:, None] & mj[None, :], other=0.0)


@triton.jit
def _rows(ptr, g, B, H, tile, m2):
    """Rows g * B ... of a (G, B, H) tensor as a (BB, HP) tile."""
    return tl.load(ptr + g * B * H + tile, mask=m2, other=0.0)


@triton.jit
def lstm_forward_sequence(
    xw_ptr, wt_ptr, rm_ptr, hs_ptr, cs_ptr, out_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr, kc_ptr,
    T, B, H, th_h, th_c, z_const,
    HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the LSTM for BB rows: what :func:`~embdrop.kernels.triton_steps.lstm_forward_step` does at
    each t, with h and c carried in registers."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.arange(0, HP)
    mb = rb < B
    mj = rj < H
    m2 = mb[:, None] & mj[None, :]
    tile = rb[:, None] * H + rj[None, :]
    gs = T * B * H
    h = tl.load(hs_ptr + tile, mask=m2, other=0.0)
    c = tl.load(cs_ptr + tile, mask=m2, other=0.0)
    if HAS_RM:
        r0 = _rows(rm_ptr, 0, B, H, tile, m2)
        r1 = _rows(rm_ptr, 1, B, H, tile, m2)
        r2 = _rows(rm_ptr, 2, B, H, tile, m2)
        r3 = _rows(rm_ptr, 3, B, H, tile, m2)
    else:
        r0 = tl.full((BB, HP), 1.0, tl.float32)
        r1 = r0
        r2 = r0
        r3 = r0
    for t in range(T):
        x = xw_ptr + t * B * H + tile
        i = tl.sigmoid(tl.load(x, mask=m2, other=0.0) + _dot(h * r0, _block(wt_ptr, 0, H, rj, rj, mj, mj), TF32))
        f = tl.sigmoid(tl.load(x + gs, mask=m2, other=0.0) + _dot(h * r1, _block(wt_ptr, 1, H, rj, rj, mj, mj), TF32))
        o = tl.sigmoid(tl.load(x + 2 * gs, mask=m2, other=0.0)
                       + _dot(h * r2, _block(wt_ptr, 2, H, rj, rj, mj, mj), TF32))  # fmt: skip
        g = _tanh(tl.load(x + 3 * gs, mask=m2, other=0.0) + _dot(h * r3, _block(wt_ptr, 3, H, rj, rj, mj, mj), TF32))
        cn = f * c + i * g
        hn = o * _tanh(cn)
        c_new = cn
        if ZMODE != 0:
            zc = _zone_factor(ZMODE, zc_ptr, kc_ptr, th_c, z_const, t, T, B, H, rb, rj, m2)
            zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, rj, m2)
            c_new = _zoned(ZMODE, cn, c, zc)
            hn = _zoned(ZMODE, hn, h, zh)
        out = hn
        if HAS_STEP:
            v = (tl.load(step_ptr + t * B + rb, mask=mb, other=0) != 0)[:, None]
            hn = tl.where(v, hn, h)
            c_new = tl.where(v, c_new, c)
            out = tl.where(v, hn, 0.0)
        tl.store(hs_ptr + (t + 1) * B * H + tile, hn, mask=m2)
        tl.store(cs_ptr + (t + 1) * B * H + tile, c_new, mask=m2)
        tl.store(out_ptr + t * B * H + tile, out, mask=m2)
        if SAVE:
            s = gates_ptr + t * B * H + tile
            tl.store(s, i, mask=m2)
            tl.store(s + gs, f, mask=m2)
            tl.store(s + 2 * gs, o, mask=m2)
            tl.store(s + 3 * gs, g, mask=m2)
            tl.store(cn_ptr + t * B * H + tile, cn, mask=m2)
        h = tl.where(m2, hn, 0.0)
        c = c_new


@triton.jit
def lstm_backward_sequence(
    dpre_ptr, w_ptr, rm_ptr, dh_ptr, dc_ptr, dout_ptr, cs_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr,
    kh_ptr, kc_ptr, dh0_ptr,
    T, B, H, th_h, th_c, z_const,
    HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the LSTM's backward for BB rows, t = T - 1 ... 0: dpre(t) into dpre_ptr, dh0 into dh0_ptr
    and dc0 into dc_ptr; dh and dc carried in registers."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    ri = tl.arange(0, HP)
    mb = rb < B
    mi = ri < H
    m2 = mb[:, None] & mi[None, :]
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    dc = tl.load(dc_ptr + tile, mask=m2, other=0.0)
    if HAS_RM:
        r0 = _rows(rm_ptr, 0, B, H, tile, m2)
        r1 = _rows(rm_ptr, 1, B, H, tile, m2)
        r2 = _rows(rm_ptr, 2, B, H, tile, m2)
        r3 = _rows(rm_ptr, 3, B, H, tile, m2)
    else:
        r0 = tl.full((BB, HP), 1.0, tl.float32)
        r1 = r0
        r2 = r0
        r3 = r0
    for back in range(T):
        t = T - 1 - back
        dout = tl.load(dout_ptr + t * B * H + tile, mask=m2, other=0.0)
        if HAS_STEP:
            v = (tl.load(step_ptr + t * B + rb, mask=mb, other=0) != 0)[:, None]
            dout = tl.where(v, dout, 0.0)
        dh = dh + dout
        s = gates_ptr + t * B * H + tile
        i = tl.load(s, mask=m2, other=0.0)
        f = tl.load(s + gs, mask=m2, other=0.0)
        o = tl.load(s + 2 * gs, mask=m2, other=0.0)
        g = tl.load(s + 3 * gs, mask=m2, other=0.0)
        cn = tl.load(cn_ptr + t * B * H + tile, mask=m2, other=0.0)
        cp = tl.load(cs_ptr + t * B * H + tile, mask=m2, other=0.0)
        dhn = dh
        dcn = dc
        dh_pass = tl.zeros((BB, HP), tl.float32)
        dc_pass = tl.zeros((BB, HP), tl.float32)
        if ZMODE != 0:
            zc = _zone_factor(ZMODE, zc_ptr, kc_ptr, th_c, z_const, t, T, B, H, rb, ri, m2)
            zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, ri, m2)
            dhn = dh * zh
            dh_pass = dh - dhn
            dcn = dc * zc
            dc_pass = dc - dcn
        tc = _tanh(cn)
        dcn = dcn + dhn * o * (1.0 - tc * tc)
        p_i = dcn * g * i * (1.0 - i)
        p_f = dcn * cp * f * (1.0 - f)
        p_o = dhn * tc * o * (1.0 - o)
        p_g = dcn * i * (1.0 - g * g)
        dc_new = dc_pass + dcn * f
        if HAS_STEP:
            p_i = tl.where(v, p_i, 0.0)
            p_f = tl.where(v, p_f, 0.0)
            p_o = tl.where(v, p_o, 0.0)
            p_g = tl.where(v, p_g, 0.0)
            dh_pass = tl.where(v, dh_pass, dh)
            dc_new = tl.where(v, dc_new, dc)
        d = dpre_ptr + t * B * H + tile
        tl.store(d, p_i, mask=m2)
        tl.store(d + gs, p_f, mask=m2)
        tl.store(d + 2 * gs, p_o, mask=m2)
        tl.store(d + 3 * gs, p_g, mask=m2)
        back_i = _dot(tl.where(m2, p_i, 0.0), _block(w_ptr, 0, H, ri, ri, mi, mi), TF32)
        back_f = _dot(tl.where(m2, p_f, 0.0), _block(w_ptr, 1, H, ri, ri, mi, mi), TF32)
        back_o = _dot(tl.where(m2, p_o, 0.0), _block(w_ptr, 2, H, ri, ri, mi, mi), TF32)
        back_g = _dot(tl.where(m2, p_g, 0.0), _block(w_ptr, 3, H, ri, ri, mi, mi), TF32)
        dh = dh_pass + r0 * back_i + r1 * back_f + r2 * back_o + r3 * back_g
        dc = dc_new
    tl.store(dh0_ptr + tile, dh, mask=m2)
    tl.store(dc_ptr + tile, dc, mask=m2)


@triton.jit
def gru_forward_sequence(
    xw_ptr, wt_ptr, b_ptr, rm_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
    T, B, H, th_h, z_const,
    HAS_BIAS: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the GRU for BB rows (see :func:`~embdrop.kernels.triton_steps.gru_forward_step`)."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.arange(0, HP)
    mb = rb < B
    mj = rj < H
    m2 = mb[:, None] & mj[None, :]
    tile = rb[:, None] * H + rj[None, :]
    gs = T * B * H
    h = tl.load(hs_ptr + tile, mask=m2, other=0.0)
    if HAS_RM:
        r0 = _rows(rm_ptr, 0, B, H, tile, m2)
        r1 = _rows(rm_ptr, 1, B, H, tile, m2)
        r2 = _rows(rm_ptr, 2, B, H, tile, m2)
    else:
        r0 = tl.full((BB, HP), 1.0, tl.float32)
        r1 = r0
        r2 = r0
    b0 = tl.zeros((HP,), tl.float32)
    b1 = b0
    b2 = b0
    if HAS_BIAS:
        b0 = tl.load(b_ptr + rj, mask=mj, other=0.0)
        b1 = tl.load(b_ptr + H + rj, mask=mj, other=0.0)
        b2 = tl.load(b_ptr + 2 * H + rj, mask=mj, other=0.0)
    for t in range(T):
        x = xw_ptr + t * B * H + tile
        a0 = _dot(h * r0, _block(wt_ptr, 0, H, rj, rj, mj, mj), TF32) + b0[None, :]
        a1 = _dot(h * r1, _block(wt_ptr, 1, H, rj, rj, mj, mj), TF32) + b1[None, :]
        a2 = _dot(h * r2, _block(wt_ptr, 2, H, rj, rj, mj, mj), TF32) + b2[None, :]
        r = tl.sigmoid(tl.load(x, mask=m2, other=0.0) + a0)
        z = tl.sigmoid(tl.load(x + gs, mask=m2, other=0.0) + a1)
        n = _tanh(tl.load(x + 2 * gs, mask=m2, other=0.0) + r * a2)
        hn = (1.0 - z) * n + z * h
        if ZMODE != 0:
            zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, rj, m2)
            hn = _zoned(ZMODE, hn, h, zh)
        out = hn
        if HAS_STEP:
            v = (tl.load(step_ptr + t * B + rb, mask=mb, other=0) != 0)[:, None]
            hn = tl.where(v, hn, h)
            out = tl.where(v, hn, 0.0)
        tl.store(hs_ptr + (t + 1) * B * H + tile, hn, mask=m2)
        tl.store(out_ptr + t * B * H + tile, out, mask=m2)
        if SAVE:
            s = gates_ptr + t * B * H + tile
            tl.store(s, r, mask=m2)
            tl.store(s + gs, z, mask=m2)
            tl.store(s + 2 * gs, n, mask=m2)
            tl.store(hn_ptr + t * B * H + tile, a2, mask=m2)
        h = tl.where(m2, hn, 0.0)


@triton.jit
def gru_backward_sequence(
    dpre_ptr, dxn_ptr, w_ptr, rm_ptr, dh_ptr, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dh0_ptr,
    T, B, H, th_h, z_const,
    HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the GRU's backward for BB rows (see
    :func:`~embdrop.kernels.triton_steps.gru_backward_step`)."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    ri = tl.arange(0, HP)
    mb = rb < B
    mi = ri < H
    m2 = mb[:, None] & mi[None, :]
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    if HAS_RM:
        r0 = _rows(rm_ptr, 0, B, H, tile, m2)
        r1 = _rows(rm_ptr, 1, B, H, tile, m2)
        r2 = _rows(rm_ptr, 2, B, H, tile, m2)
    else:
        r0 = tl.full((BB, HP), 1.0, tl.float32)
        r1 = r0
        r2 = r0
    for back in range(T):
        t = T - 1 - back
        dout = tl.load(dout_ptr + t * B * H + tile, mask=m2, other=0.0)
        if HAS_STEP:
            v = (tl.load(step_ptr + t * B + rb, mask=mb, other=0) != 0)[:, None]
            dout = tl.where(v, dout, 0.0)
        dh = dh + dout
        s = gates_ptr + t * B * H + tile
        r = tl.load(s, mask=m2, other=0.0)
        z = tl.load(s + gs, mask=m2, other=0.0)
        n = tl.load(s + 2 * gs, mask=m2, other=0.0)
        hn = tl.load(hn_ptr + t * B * H + tile, mask=m2, other=0.0)
        hp = tl.load(hs_ptr + t * B * H + tile, mask=m2, other=0.0)
        dnew = dh
        dh_pass = tl.zeros((BB, HP), tl.float32)
        if ZMODE != 0:
            zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, ri, m2)
            dnew = dh * zh
            dh_pass = dh - dnew
        dn = dnew * (1.0 - z)
        dh_pass = dh_pass + dnew * z
        x_n = dn * (1.0 - n * n)
        p_r = x_n * hn * r * (1.0 - r)
        p_z = dnew * (hp - n) * z * (1.0 - z)
        p_n = x_n * r
        if HAS_STEP:
            p_r = tl.where(v, p_r, 0.0)
            p_z = tl.where(v, p_z, 0.0)
            p_n = tl.where(v, p_n, 0.0)
            x_n = tl.where(v, x_n, 0.0)
            dh_pass = tl.where(v, dh_pass, dh)
        d = dpre_ptr + t * B * H + tile
        tl.store(d, p_r, mask=m2)
        tl.store(d + gs, p_z, mask=m2)
        tl.store(d + 2 * gs, p_n, mask=m2)
        tl.store(dxn_ptr + t * B * H + tile, x_n, mask=m2)
        back_r = _dot(tl.where(m2, p_r, 0.0), _block(w_ptr, 0, H, ri, ri, mi, mi), TF32)
        back_z = _dot(tl.where(m2, p_z, 0.0), _block(w_ptr, 1, H, ri, ri, mi, mi), TF32)
        back_n = _dot(tl.where(m2, p_n, 0.0), _block(w_ptr, 2, H, ri, ri, mi, mi), TF32)
        dh = dh_pass + r0 * back_r + r1 * back_z + r2 * back_n
    tl.store(dh0_ptr + tile, dh, mask=m2)

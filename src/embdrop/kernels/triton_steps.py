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

Layouts: xw and the saved gates (G, T, B, H); states (T + 1, B, H); the forward reads W^T as (G, H_in, H_out), the
backward W as (G, H_out, H_in), both contiguous, so tiles load along contiguous rows. Block shapes are powers of two
of at least 16 (``tl.dot``'s minimum on real GPUs); ragged edges are masked. Products accumulate in float32 with
operands in W's dtype (bfloat16/float16 under autocast). ``TRITON_INTERPRET=1`` runs the same kernels on CPU tensors.

Zoneout modes (ZMODE): 0 none; 1 (T, B, H) keep-masks read; 2 hashed from a key (entry (b, t, j) of a (B, T, H)
mask, the hash of :func:`embdrop.functional.masks.bernoulli_keep_hashed`); 3 the eval expectation 1 - p.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

# Triton's interpreter (3.9) multiplies bfloat16 operands of tl.dot wrongly (numpy has no bfloat16): there the
# operands, rounded to the weights' dtype, are multiplied in float32, which is what the GPU's products compute.
_UPCAST = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"))


@triton.jit
def _mix32(x):
    """lowbias32 (Wellons) on uint32: the hash of the CPU kernel's hashed masks (csrc/common.h)."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


@triton.jit
def _hashed_keep(key_ptr, threshold, index):
    """1 where entry ``index`` (uint32) of the hashed mask of the key at ``key_ptr`` is kept, else 0."""
    key = tl.load(key_ptr)
    s0 = (key & 0xFFFFFFFF).to(tl.uint32)
    s1 = ((key >> 32) & 0xFFFFFFFF).to(tl.uint32)
    u = _mix32(_mix32(index ^ s0) + s1)
    return u.to(tl.int64) < threshold


@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _zone_factor(zmode: tl.constexpr, z_ptr, key_ptr, threshold, const, t, T, B, H, rb, rj, m2):
    """The zoneout update factor of the tile at step t: 1 takes the new value, 0 keeps the old one."""
    if zmode == 1:
        return tl.load(z_ptr + t * B * H + rb[:, None] * H + rj[None, :], mask=m2, other=0.0)
    elif zmode == 2:
        index = (rb[:, None] * (T * H) + t * H + rj[None, :]).to(tl.uint32)
        return _hashed_keep(key_ptr, threshold, index).to(tl.float32)
    else:
        return tl.zeros(m2.shape, tl.float32) + const


@triton.jit
def _zoned(zmode: tl.constexpr, new, old, z):
    """Zoneout: the reference's torch.where for 0/1 masks, its mix old + (new - old) * z for the expectation."""
    if zmode == 3:
        return old + (new - old) * z
    else:
        return tl.where(z != 0, new, old)


@triton.jit
def _dot(a, w, TF32: tl.constexpr):
    """The product a @ w with a rounded to w's dtype, accumulated in float32; float32 operands in TF32 only where
    ``TF32`` (PyTorch's ``torch.backends.cuda.matmul.allow_tf32``, off by default)."""
    if _UPCAST:
        return tl.dot(a.to(w.dtype).to(tl.float32), w.to(tl.float32))
    elif TF32 or w.dtype != tl.float32:
        return tl.dot(a.to(w.dtype), w, out_dtype=tl.float32)
    else:
        return tl.dot(a, w, input_precision="ieee", out_dtype=tl.float32)


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
    """Step t of the LSTM (gates i, f, o, g): h(t), c(t) into hs[t + 1], cs[t + 1], the output into out[t]."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.program_id(1) * BH + tl.arange(0, BH)
    m2 = (rb < B)[:, None] & (rj < H)[None, :]
    tile = rb[:, None] * H + rj[None, :]
    h_prev = hs_ptr + t * B * H
    a0 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 0, B, H, rb, rj, HAS_RM, BK, TF32)
    a1 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 1, B, H, rb, rj, HAS_RM, BK, TF32)
    a2 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 2, B, H, rb, rj, HAS_RM, BK, TF32)
    a3 = _masked_product(tl.zeros((BB, BH), tl.float32), h_prev, rm_ptr, wt_ptr, 3, B, H, rb, rj, HAS_RM, BK, TF32)
    gs = T * B * H  # one gate's stride in xw and the saved gates
    x = xw_ptr + t * B * H + tile
    i = tl.sigmoid(a0 + tl.load(x, mask=m2, other=0.0))
    f = tl.sigmoid(a1 + tl.load(x + gs, mask=m2, other=0.0))
    o = tl.sigmoid(a2 + tl.load(x + 2 * gs, mask=m2, other=0.0))
    g = _tanh(a3 + tl.load(x + 3 * gs, mask=m2, other=0.0))
    hp = tl.load(h_prev + tile, mask=m2, other=0.0)
    cp = tl.load(cs_ptr + t * B * H + tile, mask=m2, other=0.0)
    cn = f * cp + i * g
    h = o * _tanh(cn)
    c = cn
    if ZMODE != 0:
        zc = _zone_factor(ZMODE, zc_ptr, kc_ptr, th_c, z_const, t, T, B, H, rb, rj, m2)
        zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, rj, m2)
        c = _zoned(ZMODE, cn, cp, zc)
        h = _zoned(ZMODE, h, hp, zh)
    out = h
    if HAS_STEP:
        v = (tl.load(step_ptr + t * B + rb, mask=rb < B, other=0) != 0)[:, None]
        h = tl.where(v, h, hp)
        c = tl.where(v, c, cp)
        out = tl.where(v, h, 0.0)
    tl.store(hs_ptr + (t + 1) * B * H + tile, h, mask=m2)
    tl.store(cs_ptr + (t + 1) * B * H + tile, c, mask=m2)
    tl.store(out_ptr + t * B * H + tile, out, mask=m2)
    if SAVE:
        s = gates_ptr + t * B * H + tile
        tl.store(s, i, mask=m2)
        tl.store(s + gs, f, mask=m2)
        tl.store(s + 2 * gs, o, mask=m2)
        tl.store(s + 3 * gs, g, mask=m2)
        tl.store(cn_ptr + t * B * H + tile, cn, mask=m2)


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
    mb = rb < B
    m2 = mb[:, None] & (ri < H)[None, :]
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
        dh_pass = tl.zeros((BB, BH), tl.float32)
        dc_pass = tl.zeros((BB, BH), tl.float32)
        if ZMODE != 0:
            zc = _zone_factor(ZMODE, zc_ptr, kc_ptr, th_c, z_const, t, T, B, H, rb, ri, m2)
            zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, ri, m2)
            dhn = dh * zh
            dh_pass = dh - dhn
            dcn = dc * zc
            dc_pass = dc - dcn
        tc = _tanh(cn)
        d_o = dhn * tc
        dcn = dcn + dhn * o * (1.0 - tc * tc)
        p_i = dcn * g * i * (1.0 - i)
        p_f = dcn * cp * f * (1.0 - f)
        p_o = d_o * o * (1.0 - o)
        p_g = dcn * i * (1.0 - g * g)
        dh_new = dh_pass
        dc_new = dc_pass + dcn * f
        if HAS_STEP:  # a padded step passes the state's gradient through and has none of its own
            p_i = tl.where(v, p_i, 0.0)
            p_f = tl.where(v, p_f, 0.0)
            p_o = tl.where(v, p_o, 0.0)
            p_g = tl.where(v, p_g, 0.0)
            dh_new = tl.where(v, dh_new, dh)
            dc_new = tl.where(v, dc_new, dc)
        d = dpre_ptr + t * B * H + tile
        tl.store(d, p_i, mask=m2)
        tl.store(d + gs, p_f, mask=m2)
        tl.store(d + 2 * gs, p_o, mask=m2)
        tl.store(d + 3 * gs, p_g, mask=m2)
        tl.store(dh_ptr + tile, dh_new, mask=m2)
        tl.store(dc_ptr + tile, dc_new, mask=m2)


@triton.jit(do_not_specialize=["t"])
def gru_forward_step(
    xw_ptr, wt_ptr, b_ptr, rm_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
    t, T, B, H, th_h, z_const,
    HAS_BIAS: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Step t of the GRU (PyTorch's form; gates r, z, n): n = tanh(x_n + r * (U_n (h * m_n) + b_hn)),
    h = (1 - z) * n + z * h(t - 1). Saves r, z, n and U_n (h * m_n) + b_hn for the backward."""
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
    gs = T * B * H
    x = xw_ptr + t * B * H + tile
    r = tl.sigmoid(tl.load(x, mask=m2, other=0.0) + a0)
    z = tl.sigmoid(tl.load(x + gs, mask=m2, other=0.0) + a1)
    n = _tanh(tl.load(x + 2 * gs, mask=m2, other=0.0) + r * a2)
    hp = tl.load(h_prev + tile, mask=m2, other=0.0)
    h = (1.0 - z) * n + z * hp
    if ZMODE != 0:
        zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, rj, m2)
        h = _zoned(ZMODE, h, hp, zh)
    out = h
    if HAS_STEP:
        v = (tl.load(step_ptr + t * B + rb, mask=rb < B, other=0) != 0)[:, None]
        h = tl.where(v, h, hp)
        out = tl.where(v, h, 0.0)
    tl.store(hs_ptr + (t + 1) * B * H + tile, h, mask=m2)
    tl.store(out_ptr + t * B * H + tile, out, mask=m2)
    if SAVE:
        s = gates_ptr + t * B * H + tile
        tl.store(s, r, mask=m2)
        tl.store(s + gs, z, mask=m2)
        tl.store(s + 2 * gs, n, mask=m2)
        tl.store(hn_ptr + t * B * H + tile, a2, mask=m2)


@triton.jit(do_not_specialize=["t"])
def gru_backward_step(
    dpre_ptr, dxn_ptr, w_ptr, rm_ptr, dh_ptr, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dh0_ptr,
    t, T, B, H, th_h, z_const,
    HAS_NEXT: tl.constexpr, POINTWISE: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr,
    ZMODE: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """As :func:`lstm_backward_step` for the GRU. dpre_ptr (G, T, B, H) receives the gradients of the recurrent
    products' outputs (r, z, and U_n (h * m_n) + b_hn); dxn_ptr (T, B, H) the gradient of x_n."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    ri = tl.program_id(1) * BH + tl.arange(0, BH)
    mb = rb < B
    m2 = mb[:, None] & (ri < H)[None, :]
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    if HAS_NEXT:
        for g in tl.static_range(3):
            dh = _product_back(dh, dpre_ptr + (t + 1) * B * H, gs, rm_ptr, w_ptr, g, B, H, rb, ri, HAS_RM, BK, TF32)
    if not POINTWISE:
        tl.store(dh0_ptr + tile, dh, mask=m2)
    else:
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
        dh_pass = tl.zeros((BB, BH), tl.float32)
        if ZMODE != 0:
            zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, ri, m2)
            dnew = dh * zh
            dh_pass = dh - dnew
        dn = dnew * (1.0 - z)
        dz = dnew * (hp - n)
        dh_pass = dh_pass + dnew * z
        x_n = dn * (1.0 - n * n)
        p_r = x_n * hn * r * (1.0 - r)
        p_z = dz * z * (1.0 - z)
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
        tl.store(dh_ptr + tile, dh_pass, mask=m2)

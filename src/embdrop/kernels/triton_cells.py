"""What the Triton recurrences share (imported only where Triton is installed): the hashed keep-mask, zoneout,
the products' precision, and each cell's point-wise step and its backward on one tile of (batch rows, units), so
that the step kernels (:mod:`~embdrop.kernels.triton_steps`) and the single-launch ones
(:mod:`~embdrop.kernels.triton_sequence`) compute the cells once.

Layouts: xw, the saved gates and dpre (G, T, B, H); states (T + 1, B, H); one gate's stride ``gs`` = T * B * H.
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
def _valid(step_ptr, t, B, rb):
    """(BB, 1): whether step t is a real step of each row (padded steps are not)."""
    return (tl.load(step_ptr + t * B + rb, mask=rb < B, other=0) != 0)[:, None]


@triton.jit
def lstm_point(
    a0, a1, a2, a3, hp, cp, t, xw_ptr, hs_ptr, cs_ptr, out_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr,
    kc_ptr, T, B, H, th_h, th_c, z_const, rb, rj, m2,
    HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
):  # fmt: skip
    """Step t of the LSTM on a tile, given its recurrent products a0..a3 (gates i, f, g, o) and h(t - 1), c(t - 1):
    the gates, the cell, zoneout, padded rows (they keep their state and output 0). Stores h(t), c(t), the output
    and, with SAVE, the gates and the cell before zoneout; returns h(t), c(t)."""
    tile = rb[:, None] * H + rj[None, :]
    gs = T * B * H
    x = xw_ptr + t * B * H + tile
    i = tl.sigmoid(a0 + tl.load(x, mask=m2, other=0.0))
    f = tl.sigmoid(a1 + tl.load(x + gs, mask=m2, other=0.0))
    g = _tanh(a2 + tl.load(x + 2 * gs, mask=m2, other=0.0))
    o = tl.sigmoid(a3 + tl.load(x + 3 * gs, mask=m2, other=0.0))
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
        v = _valid(step_ptr, t, B, rb)
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
        tl.store(s + 2 * gs, g, mask=m2)
        tl.store(s + 3 * gs, o, mask=m2)
        tl.store(cn_ptr + t * B * H + tile, cn, mask=m2)
    return h, c


@triton.jit
def lstm_point_back(
    dh, dc, t, dout_ptr, cs_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr, kc_ptr, dpre_ptr,
    T, B, H, th_h, th_c, z_const, rb, ri, m2,
    HAS_STEP: tl.constexpr, ZMODE: tl.constexpr,
):  # fmt: skip
    """The backward of :func:`lstm_point` at step t on a tile, given dh(t) from the later steps and dc(t): adds the
    output's gradient, stores dpre(t) (the gates' pre-activations' gradients) and returns them with what h(t - 1)
    and c(t - 1) receive directly (zoneout's and padding's pass-through, the cell's forget path)."""
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dout = tl.load(dout_ptr + t * B * H + tile, mask=m2, other=0.0)
    if HAS_STEP:
        v = _valid(step_ptr, t, B, rb)
        dout = tl.where(v, dout, 0.0)
    dh = dh + dout
    s = gates_ptr + t * B * H + tile
    i = tl.load(s, mask=m2, other=0.0)
    f = tl.load(s + gs, mask=m2, other=0.0)
    g = tl.load(s + 2 * gs, mask=m2, other=0.0)
    o = tl.load(s + 3 * gs, mask=m2, other=0.0)
    cn = tl.load(cn_ptr + t * B * H + tile, mask=m2, other=0.0)
    cp = tl.load(cs_ptr + t * B * H + tile, mask=m2, other=0.0)
    dhn = dh
    dcn = dc
    dh_pass = tl.zeros(dh.shape, tl.float32)
    dc_pass = tl.zeros(dh.shape, tl.float32)
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
    if HAS_STEP:  # a padded step passes the state's gradient through and has none of its own
        p_i = tl.where(v, p_i, 0.0)
        p_f = tl.where(v, p_f, 0.0)
        p_o = tl.where(v, p_o, 0.0)
        p_g = tl.where(v, p_g, 0.0)
        dh_pass = tl.where(v, dh_pass, dh)
        dc_new = tl.where(v, dc_new, dc)
    d = dpre_ptr + t * B * H + tile
    tl.store(d, p_i, mask=m2)
    tl.store(d + gs, p_f, mask=m2)
    tl.store(d + 2 * gs, p_g, mask=m2)
    tl.store(d + 3 * gs, p_o, mask=m2)
    return p_i, p_f, p_g, p_o, dh_pass, dc_new


@triton.jit
def gru_point(
    a0, a1, a2, hp, t, xw_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
    T, B, H, th_h, z_const, rb, rj, m2,
    HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
):  # fmt: skip
    """Step t of the GRU (PyTorch's form; gates r, z, n) on a tile, given its recurrent products with their biases
    a0..a2 and h(t - 1): n = tanh(x_n + r * a2), h = (1 - z) * n + z * h(t - 1), zoneout, padded rows. Stores h(t),
    the output and, with SAVE, r, z, n and a2; returns h(t)."""
    tile = rb[:, None] * H + rj[None, :]
    gs = T * B * H
    x = xw_ptr + t * B * H + tile
    r = tl.sigmoid(tl.load(x, mask=m2, other=0.0) + a0)
    z = tl.sigmoid(tl.load(x + gs, mask=m2, other=0.0) + a1)
    n = _tanh(tl.load(x + 2 * gs, mask=m2, other=0.0) + r * a2)
    h = (1.0 - z) * n + z * hp
    if ZMODE != 0:
        zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, rj, m2)
        h = _zoned(ZMODE, h, hp, zh)
    out = h
    if HAS_STEP:
        v = _valid(step_ptr, t, B, rb)
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
    return h


@triton.jit
def gru_point_back(
    dh, t, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dpre_ptr, dxn_ptr,
    T, B, H, th_h, z_const, rb, ri, m2,
    HAS_STEP: tl.constexpr, ZMODE: tl.constexpr,
):  # fmt: skip
    """The backward of :func:`gru_point` at step t on a tile: stores dpre(t) (the gradients of the recurrent
    products' outputs: r, z, and U_n (h * m_n) + b_hn) and x_n's gradient; returns dpre(t) and what h(t - 1)
    receives directly."""
    tile = rb[:, None] * H + ri[None, :]
    gs = T * B * H
    dout = tl.load(dout_ptr + t * B * H + tile, mask=m2, other=0.0)
    if HAS_STEP:
        v = _valid(step_ptr, t, B, rb)
        dout = tl.where(v, dout, 0.0)
    dh = dh + dout
    s = gates_ptr + t * B * H + tile
    r = tl.load(s, mask=m2, other=0.0)
    z = tl.load(s + gs, mask=m2, other=0.0)
    n = tl.load(s + 2 * gs, mask=m2, other=0.0)
    hn = tl.load(hn_ptr + t * B * H + tile, mask=m2, other=0.0)
    hp = tl.load(hs_ptr + t * B * H + tile, mask=m2, other=0.0)
    dnew = dh
    dh_pass = tl.zeros(dh.shape, tl.float32)
    if ZMODE != 0:
        zh = _zone_factor(ZMODE, zh_ptr, kh_ptr, th_h, z_const, t, T, B, H, rb, ri, m2)
        dnew = dh * zh
        dh_pass = dh - dnew
    dh_pass = dh_pass + dnew * z
    x_n = dnew * (1.0 - z) * (1.0 - n * n)
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
    return p_r, p_z, p_n, dh_pass

"""The recurrences as single-launch Triton kernels with the time loop inside (imported only where Triton is
installed): a program owns BB rows of the batch and all H units, so that no step waits for another program, and
runs every step itself; h, c, the recurrent masks (fixed over time) and, in the backward, dh and dc stay in
registers from one step to the next. One launch per call forward and one backward, against one per step for
:mod:`embdrop.kernels.triton_steps`; for small H only (all of H in one tile: HP, H rounded up to a power of two,
at most :data:`embdrop.kernels.gpu_recurrence.SEQUENCE_MAX_H`), and only as many programs as row blocks, so it
suits large batches (``EMBDROP_GPU_KERNEL=sequence`` chooses it; see :mod:`embdrop.kernels.gpu_recurrence`).

The cells are :mod:`embdrop.kernels.triton_cells`' (the step kernels use the same), so the saved tensors and the
backward's outputs are those of the step kernels.
"""

from __future__ import annotations

import triton
import triton.language as tl

from embdrop.kernels.triton_cells import _dot, gru_point, gru_point_back, lstm_point, lstm_point_back


@triton.jit
def _block(ptr, g, H, r, m):
    """Block g of a (G, H, H) matrix as an (HP, HP) tile (zeros outside H)."""
    return tl.load(ptr + g * H * H + r[:, None] * H + r[None, :], mask=m[:, None] & m[None, :], other=0.0)


@triton.jit
def _masks(rm_ptr, g, B, H, tile, m2, HAS_RM: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr):
    """Gate g's recurrent mask on the program's rows, (BB, HP); ones without masks."""
    if HAS_RM:
        return tl.load(rm_ptr + g * B * H + tile, mask=m2, other=0.0)
    else:
        return tl.full((BB, HP), 1.0, tl.float32)


@triton.jit
def lstm_forward_sequence(
    xw_ptr, wt_ptr, rm_ptr, hs_ptr, cs_ptr, out_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr, kc_ptr,
    T, B, H, th_h, th_c, z_const,
    HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the LSTM for BB rows, h and c carried in registers."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.arange(0, HP)
    mj = rj < H
    m2 = (rb < B)[:, None] & mj[None, :]
    tile = rb[:, None] * H + rj[None, :]
    h = tl.load(hs_ptr + tile, mask=m2, other=0.0)
    c = tl.load(cs_ptr + tile, mask=m2, other=0.0)
    r0 = _masks(rm_ptr, 0, B, H, tile, m2, HAS_RM, BB, HP)
    r1 = _masks(rm_ptr, 1, B, H, tile, m2, HAS_RM, BB, HP)
    r2 = _masks(rm_ptr, 2, B, H, tile, m2, HAS_RM, BB, HP)
    r3 = _masks(rm_ptr, 3, B, H, tile, m2, HAS_RM, BB, HP)
    for t in range(T):
        a0 = _dot(h * r0, _block(wt_ptr, 0, H, rj, mj), TF32)
        a1 = _dot(h * r1, _block(wt_ptr, 1, H, rj, mj), TF32)
        a2 = _dot(h * r2, _block(wt_ptr, 2, H, rj, mj), TF32)
        a3 = _dot(h * r3, _block(wt_ptr, 3, H, rj, mj), TF32)
        h, c = lstm_point(a0, a1, a2, a3, h, c, t, xw_ptr, hs_ptr, cs_ptr, out_ptr, gates_ptr, cn_ptr, step_ptr,
                          zh_ptr, zc_ptr, kh_ptr, kc_ptr, T, B, H, th_h, th_c, z_const, rb, rj, m2, HAS_STEP, ZMODE,
                          SAVE)  # fmt: skip
        h = tl.where(m2, h, 0.0)


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
    mi = ri < H
    m2 = (rb < B)[:, None] & mi[None, :]
    tile = rb[:, None] * H + ri[None, :]
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    dc = tl.load(dc_ptr + tile, mask=m2, other=0.0)
    r0 = _masks(rm_ptr, 0, B, H, tile, m2, HAS_RM, BB, HP)
    r1 = _masks(rm_ptr, 1, B, H, tile, m2, HAS_RM, BB, HP)
    r2 = _masks(rm_ptr, 2, B, H, tile, m2, HAS_RM, BB, HP)
    r3 = _masks(rm_ptr, 3, B, H, tile, m2, HAS_RM, BB, HP)
    for back in range(T):
        t = T - 1 - back
        p_i, p_f, p_g, p_o, dh_pass, dc = lstm_point_back(
            dh, dc, t, dout_ptr, cs_ptr, gates_ptr, cn_ptr, step_ptr, zh_ptr, zc_ptr, kh_ptr, kc_ptr, dpre_ptr,
            T, B, H, th_h, th_c, z_const, rb, ri, m2, HAS_STEP, ZMODE)  # fmt: skip
        dh = dh_pass + r0 * _dot(tl.where(m2, p_i, 0.0), _block(w_ptr, 0, H, ri, mi), TF32)
        dh += r1 * _dot(tl.where(m2, p_f, 0.0), _block(w_ptr, 1, H, ri, mi), TF32)
        dh += r2 * _dot(tl.where(m2, p_g, 0.0), _block(w_ptr, 2, H, ri, mi), TF32)
        dh += r3 * _dot(tl.where(m2, p_o, 0.0), _block(w_ptr, 3, H, ri, mi), TF32)
    tl.store(dh0_ptr + tile, dh, mask=m2)
    tl.store(dc_ptr + tile, dc, mask=m2)


@triton.jit
def gru_forward_sequence(
    xw_ptr, wt_ptr, b_ptr, rm_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
    T, B, H, th_h, z_const,
    HAS_BIAS: tl.constexpr, HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr, SAVE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the GRU for BB rows, h carried in registers."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rj = tl.arange(0, HP)
    mj = rj < H
    m2 = (rb < B)[:, None] & mj[None, :]
    tile = rb[:, None] * H + rj[None, :]
    h = tl.load(hs_ptr + tile, mask=m2, other=0.0)
    r0 = _masks(rm_ptr, 0, B, H, tile, m2, HAS_RM, BB, HP)
    r1 = _masks(rm_ptr, 1, B, H, tile, m2, HAS_RM, BB, HP)
    r2 = _masks(rm_ptr, 2, B, H, tile, m2, HAS_RM, BB, HP)
    b0 = tl.zeros((HP,), tl.float32)
    b1 = b0
    b2 = b0
    if HAS_BIAS:
        b0 = tl.load(b_ptr + rj, mask=mj, other=0.0)
        b1 = tl.load(b_ptr + H + rj, mask=mj, other=0.0)
        b2 = tl.load(b_ptr + 2 * H + rj, mask=mj, other=0.0)
    for t in range(T):
        a0 = _dot(h * r0, _block(wt_ptr, 0, H, rj, mj), TF32) + b0[None, :]
        a1 = _dot(h * r1, _block(wt_ptr, 1, H, rj, mj), TF32) + b1[None, :]
        a2 = _dot(h * r2, _block(wt_ptr, 2, H, rj, mj), TF32) + b2[None, :]
        h = gru_point(a0, a1, a2, h, t, xw_ptr, hs_ptr, out_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr,
                      T, B, H, th_h, z_const, rb, rj, m2, HAS_STEP, ZMODE, SAVE)  # fmt: skip
        h = tl.where(m2, h, 0.0)


@triton.jit
def gru_backward_sequence(
    dpre_ptr, dxn_ptr, w_ptr, rm_ptr, dh_ptr, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dh0_ptr,
    T, B, H, th_h, z_const,
    HAS_RM: tl.constexpr, HAS_STEP: tl.constexpr, ZMODE: tl.constexpr,
    BB: tl.constexpr, HP: tl.constexpr, TF32: tl.constexpr,
):  # fmt: skip
    """Every step of the GRU's backward for BB rows, dh carried in registers."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    ri = tl.arange(0, HP)
    mi = ri < H
    m2 = (rb < B)[:, None] & mi[None, :]
    tile = rb[:, None] * H + ri[None, :]
    dh = tl.load(dh_ptr + tile, mask=m2, other=0.0)
    r0 = _masks(rm_ptr, 0, B, H, tile, m2, HAS_RM, BB, HP)
    r1 = _masks(rm_ptr, 1, B, H, tile, m2, HAS_RM, BB, HP)
    r2 = _masks(rm_ptr, 2, B, H, tile, m2, HAS_RM, BB, HP)
    for back in range(T):
        t = T - 1 - back
        p_r, p_z, p_n, dh_pass = gru_point_back(
            dh, t, dout_ptr, hs_ptr, gates_ptr, hn_ptr, step_ptr, zh_ptr, kh_ptr, dpre_ptr, dxn_ptr,
            T, B, H, th_h, z_const, rb, ri, m2, HAS_STEP, ZMODE)  # fmt: skip
        dh = dh_pass + r0 * _dot(tl.where(m2, p_r, 0.0), _block(w_ptr, 0, H, ri, mi), TF32)
        dh += r1 * _dot(tl.where(m2, p_z, 0.0), _block(w_ptr, 1, H, ri, mi), TF32)
        dh += r2 * _dot(tl.where(m2, p_n, 0.0), _block(w_ptr, 2, H, ri, mi), TF32)
    tl.store(dh0_ptr + tile, dh, mask=m2)

"""The LSTM and GRU recurrences on the GPU: the Triton steps of :mod:`embdrop.kernels.triton_steps`, one launch per
step forward and one per step backward, the weight gradients as one batched product after the loop. The same
contract as :mod:`embdrop.kernels.reference` (per-gate recurrent masks, zoneout, padded steps), plus zoneout masks
given as a key (:class:`HashedZoneout`), hashed in the kernels instead of being read.

Kernel and launch counts: forward, one launch per step (the gates' masked products and the point-wise step of a
(BB, BH) tile in one program); backward, one launch per step plus one for dh0, then one batched product for
``weight_hh``'s gradient (and a sum for GRU's ``bias_hh``). ``EMBDROP_GPU_KERNEL=sequence`` runs the single-launch
kernels of :mod:`embdrop.kernels.triton_sequence` instead where H <= :data:`SEQUENCE_MAX_H` (one launch forward,
one backward). With ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors (slowly): that is how the tests
check them on machines without a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import torch
from torch import Tensor

from embdrop import _checks
from embdrop.kernels import recurrence
from embdrop.kernels.first_order import first_order


@dataclass(frozen=True)
class HashedZoneout:
    """A (B, T, H) zoneout keep-mask left unwritten: entry (b, t, j) is kept when the hash of b*T*H + t*H + j under
    ``key`` (a 0-dim int64 tensor on the layer's device) is below ``threshold`` (the hash of
    :func:`embdrop.functional.masks.bernoulli_keep_hashed`, bit for bit)."""

    key: Tensor
    threshold: int


@functools.cache
def installed() -> bool:
    """Whether Triton imports (it comes with PyTorch's CUDA builds; ``pip install triton`` elsewhere): asked only
    on the GPU path, so that a CPU run never imports it."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton.language  # noqa: F401
    except Exception:  # an installed Triton that cannot load (a broken or mismatched install): the reference loop
        return False
    return True


def _steps():
    from embdrop.kernels import triton_steps

    return triton_steps


def _sequence():
    from embdrop.kernels import triton_sequence

    return triton_sequence


SEQUENCE_MAX_H = 128  # the single-launch kernels hold all of H in one tile: at most this many units (padded)
SEQUENCE_ROWS = 16  # their programs' rows: the fewest tl.dot allows, for as many programs as the batch gives


def kernel_kind(H: int) -> str:
    """Which kernels run: ``EMBDROP_GPU_KERNEL=sequence`` takes the single-launch ones
    (:mod:`embdrop.kernels.triton_sequence`) where H fits them, else (and by default, ``steps``) one launch per
    step. Which is faster depends on B, H and the GPU: benchmarks/gpu.py measures both."""
    import os

    want = os.environ.get("EMBDROP_GPU_KERNEL", "steps")
    if want not in ("steps", "sequence"):
        raise _checks.invalid("EMBDROP_GPU_KERNEL", "'steps' or 'sequence'", want)
    return "sequence" if want == "sequence" and _pow2(H) <= SEQUENCE_MAX_H else "steps"


def _pow2(n: int) -> int:
    return max(16, 1 << max(0, (n - 1).bit_length()))


def _blocks(B: int, H: int) -> dict:
    """Tile sizes (powers of two of at least 16, ``tl.dot``'s minimum, at most 64), the products' precision and HP,
    all of H padded for the single-launch kernels (0: the step kernels run)."""
    return {"BB": min(64, _pow2(B)), "BH": min(64, _pow2(H)), "BK": min(64, _pow2(H)),
            "TF32": bool(torch.backends.cuda.matmul.allow_tf32),
            "HP": _pow2(H) if kernel_kind(H) == "sequence" else 0}  # fmt: skip


def _step_blocks(blocks: dict) -> dict:
    return {k: blocks[k] for k in ("BB", "BH", "BK", "TF32")}


def _sequence_blocks(blocks: dict) -> dict:
    return {"BB": SEQUENCE_ROWS, "HP": blocks["HP"], "TF32": blocks["TF32"]}


def _grid(B: int, H: int, blocks: dict) -> tuple[int, int]:
    return (-(-B // blocks["BB"]), -(-H // blocks["BH"]))


def _rows_grid(B: int) -> tuple[int]:
    return (-(-B // SEQUENCE_ROWS),)


class _Zone:
    """The zoneout arguments of the kernels: mode, the masks or keys, thresholds and the eval constant."""

    def __init__(self, zh, zc, like: Tensor):
        dummy = like.new_zeros(1)
        key = torch.zeros((), dtype=torch.int64, device=like.device)
        self.mode, self.h, self.c, self.kh, self.kc = 0, dummy, dummy, key, key
        self.th_h, self.th_c, self.const = 0, 0, 0.0
        if zh is None:
            return
        if isinstance(zh, HashedZoneout):
            self.mode, self.kh, self.th_h = 2, zh.key, zh.threshold
            if isinstance(zc, HashedZoneout):
                self.kc, self.th_c = zc.key, zc.threshold
        elif isinstance(zh, Tensor):
            self.mode, self.h = 1, zh.to(like.dtype).contiguous()
            if zc is not None:
                self.c = zc.to(like.dtype).contiguous()
        else:
            self.mode, self.const = 3, float(zh)

    def args(self, cell: bool) -> tuple:
        if cell:
            return self.h, self.c, self.kh, self.kc
        return self.h, self.kh

    def scalars(self, cell: bool) -> tuple:
        return (self.th_h, self.th_c, self.const) if cell else (self.th_h, self.const)


def _prepare(xw: Tensor, w_hh: Tensor, rmask: Tensor | None, step: Tensor | None, G: int):
    _, T, B, H = xw.shape
    if xw.dtype != torch.float32:
        raise _checks.invalid("xw", "a float32 tensor (the state's dtype on the GPU path)", _checks.describe(xw))
    if tuple(w_hh.shape) != (G * H, H):
        raise _checks.invalid("w_hh", f"a tensor of shape ({G * H}, {H})", _checks.describe(w_hh))
    rm = rmask.to(xw.dtype).contiguous() if rmask is not None else xw.new_zeros(1)
    st = step.to(torch.uint8).contiguous() if step is not None else torch.zeros(1, dtype=torch.uint8, device=xw.device)
    return T, B, H, rm, st


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw, w_hh, h0, c0, rmask, step, zone: _Zone, save: bool):
        G = 4
        T, B, H, rm, st = _prepare(xw, w_hh, rmask, step, G)
        xw = xw.contiguous()
        wt = w_hh.view(G, H, H).transpose(1, 2).contiguous()  # (G, H_in, H_out)
        hs = xw.new_empty(T + 1, B, H)
        cs = xw.new_empty(T + 1, B, H)
        hs[0], cs[0] = h0, c0
        out = xw.new_empty(T, B, H)
        gates = xw.new_empty(G, T, B, H) if save else xw.new_zeros(1)
        cn = xw.new_empty(T, B, H) if save else xw.new_zeros(1)
        blocks = _blocks(B, H)
        flags = {"HAS_RM": rmask is not None, "HAS_STEP": step is not None, "ZMODE": zone.mode, "SAVE": save}
        args = (xw, wt, rm, hs, cs, out, gates, cn, st, *zone.args(True))
        if blocks["HP"]:  # one launch, the time loop inside
            _sequence().lstm_forward_sequence[_rows_grid(B)](*args, T, B, H, *zone.scalars(True), **flags,
                                                            **_sequence_blocks(blocks))  # fmt: skip
        else:
            kernel = _steps().lstm_forward_step[_grid(B, H, blocks)]
            for t in range(T):
                kernel(*args, t, T, B, H, *zone.scalars(True), **flags, **_step_blocks(blocks))
        ctx.zone, ctx.blocks, ctx.has_rm, ctx.has_step = zone, blocks, rmask is not None, step is not None
        if save:
            ctx.save_for_backward(w_hh, rm, st, hs, cs, gates, cn)
        return out, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, dout, dh, dc):
        w_hh, rm, st, hs, cs, gates, cn = ctx.saved_tensors
        G = 4
        T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        dh_buf, dc_buf = _carried(dh, hs), _carried(dc, hs)
        dout = torch.zeros_like(hs[1:]) if dout is None else dout.contiguous()
        dpre = hs.new_empty(G, T, B, H)
        dh0 = hs.new_empty(B, H)
        w = w_hh.view(G, H, H).contiguous()
        zone, blocks = ctx.zone, ctx.blocks
        flags = {"HAS_RM": ctx.has_rm, "HAS_STEP": ctx.has_step, "ZMODE": zone.mode}
        if blocks["HP"]:
            _sequence().lstm_backward_sequence[_rows_grid(B)](
                dpre, w, rm, dh_buf, dc_buf, dout, cs, gates, cn, st, *zone.args(True), dh0, T, B, H,
                *zone.scalars(True), **flags, **_sequence_blocks(blocks))  # fmt: skip
        else:
            kernel = _steps().lstm_backward_step[_grid(B, H, blocks)]
            for t in range(T - 1, -2, -1):
                kernel(dpre, w, rm, dh_buf, dc_buf, dout, hs, cs, gates, cn, st, *zone.args(True), dh0,
                       t, T, B, H, *zone.scalars(True), HAS_NEXT=t < T - 1, POINTWISE=t >= 0, **flags,
                       **_step_blocks(blocks))  # fmt: skip
        dw = _weight_grad(dpre, hs[:T], rm if ctx.has_rm else None).to(w_hh.dtype)
        dpre, dw, dh0, dc_buf = first_order("the LSTM's recurrence", (dpre, dw, dh0, dc_buf), dout, dh, dc, w_hh, hs)
        return dpre, dw, dh0, dc_buf, None, None, None, None


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw, w_hh, b_hh, h0, rmask, step, zone: _Zone, save: bool):
        G = 3
        T, B, H, rm, st = _prepare(xw, w_hh, rmask, step, G)
        xw = xw.contiguous()
        wt = w_hh.view(G, H, H).transpose(1, 2).contiguous()
        b = b_hh.contiguous() if b_hh is not None else xw.new_zeros(1)
        hs = xw.new_empty(T + 1, B, H)
        hs[0] = h0
        out = xw.new_empty(T, B, H)
        gates = xw.new_empty(G, T, B, H) if save else xw.new_zeros(1)
        hn = xw.new_empty(T, B, H) if save else xw.new_zeros(1)
        blocks = _blocks(B, H)
        flags = {"HAS_BIAS": b_hh is not None, "HAS_RM": rmask is not None, "HAS_STEP": step is not None,
                 "ZMODE": zone.mode, "SAVE": save}  # fmt: skip
        args = (xw, wt, b, rm, hs, out, gates, hn, st, *zone.args(False))
        if blocks["HP"]:
            _sequence().gru_forward_sequence[_rows_grid(B)](*args, T, B, H, *zone.scalars(False), **flags,
                                                           **_sequence_blocks(blocks))  # fmt: skip
        else:
            kernel = _steps().gru_forward_step[_grid(B, H, blocks)]
            for t in range(T):
                kernel(*args, t, T, B, H, *zone.scalars(False), **flags, **_step_blocks(blocks))
        ctx.zone, ctx.blocks, ctx.has_rm, ctx.has_step = zone, blocks, rmask is not None, step is not None
        ctx.has_bias = b_hh is not None
        if save:
            ctx.save_for_backward(w_hh, rm, st, hs, gates, hn)
        return out, hs[-1].clone()

    @staticmethod
    def backward(ctx, dout, dh):
        w_hh, rm, st, hs, gates, hn = ctx.saved_tensors
        G = 3
        T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        dh_buf = _carried(dh, hs)
        dout = torch.zeros_like(hs[1:]) if dout is None else dout.contiguous()
        dpre = hs.new_empty(G, T, B, H)
        dxn = hs.new_empty(T, B, H)
        dh0 = hs.new_empty(B, H)
        w = w_hh.view(G, H, H).contiguous()
        zone, blocks = ctx.zone, ctx.blocks
        flags = {"HAS_RM": ctx.has_rm, "HAS_STEP": ctx.has_step, "ZMODE": zone.mode}
        if blocks["HP"]:
            _sequence().gru_backward_sequence[_rows_grid(B)](
                dpre, dxn, w, rm, dh_buf, dout, hs, gates, hn, st, *zone.args(False), dh0, T, B, H,
                *zone.scalars(False), **flags, **_sequence_blocks(blocks))  # fmt: skip
        else:
            kernel = _steps().gru_backward_step[_grid(B, H, blocks)]
            for t in range(T - 1, -2, -1):
                kernel(dpre, dxn, w, rm, dh_buf, dout, hs, gates, hn, st, *zone.args(False), dh0,
                       t, T, B, H, *zone.scalars(False), HAS_NEXT=t < T - 1, POINTWISE=t >= 0, **flags,
                       **_step_blocks(blocks))  # fmt: skip
        dw = _weight_grad(dpre, hs[:T], rm if ctx.has_rm else None).to(w_hh.dtype)
        db = dpre.sum(dim=(1, 2)).reshape(-1) if ctx.has_bias else None
        dxw = torch.cat([dpre[:2], dxn.unsqueeze(0)])
        dxw, dw, db, dh0 = first_order("the GRU's recurrence", (dxw, dw, db, dh0), dout, dh, w_hh, hs)
        return dxw, dw, db, dh0, None, None, None, None


def _carried(d: Tensor | None, hs: Tensor) -> Tensor:
    """The gradient a backward carries from step to step, (B, H), starting from the final state's (a new tensor:
    the kernels write it in place)."""
    if d is None:
        return torch.zeros(hs.shape[1:], dtype=hs.dtype, device=hs.device)
    return d.to(hs.dtype).contiguous().clone()


def _weight_grad(dpre: Tensor, h_prev: Tensor, rm: Tensor | None) -> Tensor:
    """D weight_hh (G*H, H): block g is sum over steps and rows of dpre_g^T (h(t - 1) * m_g), one batched product."""
    G, T, B, H = dpre.shape
    hm = h_prev.unsqueeze(0) if rm is None else h_prev.unsqueeze(0) * rm.unsqueeze(1)  # (G or 1, T, B, H)
    hm = hm.expand(G, T, B, H).reshape(G, T * B, H)
    return torch.bmm(dpre.view(G, T * B, H).transpose(1, 2), hm).reshape(G * H, H)


def lstm_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    rmask: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    step: Tensor | None = None,
    zoneout_h: Tensor | float | HashedZoneout | None = None,
    zoneout_c: Tensor | float | HashedZoneout | None = None,
):
    """Same contract as :func:`embdrop.kernels.reference.lstm_recurrence`; zoneout masks may also be given as
    :class:`HashedZoneout` keys. Returns out (T, B, H), h (B, H), c (B, H)."""
    zone = _Zone(zoneout_h, zoneout_c, xw)
    return _LSTM.apply(xw, w_hh, h0, c0, rmask, step, zone, recurrence.needs_saving(xw, w_hh, h0, c0))


def gru_recurrence(
    xw: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    rmask: Tensor | None,
    h0: Tensor,
    step: Tensor | None = None,
    zoneout_h: Tensor | float | HashedZoneout | None = None,
):
    """Same contract as :func:`embdrop.kernels.reference.gru_recurrence` (``reset_after=True``). Returns out
    (T, B, H) and h (B, H)."""
    zone = _Zone(zoneout_h, None, xw)
    return _GRU.apply(xw, w_hh, b_hh, h0, rmask, step, zone, recurrence.needs_saving(xw, w_hh, b_hh, h0))

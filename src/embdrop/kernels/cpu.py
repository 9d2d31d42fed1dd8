"""The fused CPU recurrence (``cpu.cpp``): compiled on first use with ``torch.utils.cpp_extension``, then cached.

The build takes about half a minute once per machine and torch version (the cache lives in torch's extension
directory, ``~/.cache/torch_extensions`` unless ``TORCH_EXTENSIONS_DIR`` says otherwise). Where it cannot be built
(no C++ compiler, no ninja), :func:`available` is False, one warning says why, and the layers use the reference
loop, which gives the same results more slowly. ``EMBDROP_KERNEL=reference`` chooses the reference loop on purpose.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_SOURCE = Path(__file__).with_name("cpu.cpp")
# Built for the CPU it runs on (the build happens there); the name below keeps builds for different CPUs apart
# in a shared cache directory.
_FLAGS = ["-O3", "-march=native"]
_state: dict = {}


def _build_name() -> str:
    """Extension name from the source, the flags and the CPU's features, so a changed one never loads stale."""
    h = hashlib.sha256(_SOURCE.read_bytes() + " ".join(_FLAGS).encode())
    try:
        with open("/proc/cpuinfo") as f:
            h.update(next((line for line in f if line.startswith("flags")), "").encode())
    except OSError:
        h.update(platform.machine().encode())
    return "embdrop_cpu_" + h.hexdigest()[:12]


def _extension():
    if "ext" not in _state:
        _state["ext"] = None
        if os.environ.get("EMBDROP_KERNEL", "").lower() == "reference":
            _state["why"] = "EMBDROP_KERNEL=reference"
            return None
        try:
            from torch.utils.cpp_extension import load

            _state["ext"] = load(name=_build_name(), sources=[str(_SOURCE)], extra_cflags=_FLAGS, verbose=False)
        except Exception as e:  # no compiler, no ninja, a failed build: all mean "use the reference loop"
            _state["why"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            warnings.warn(
                f"embdrop: the fused CPU recurrent kernel could not be built ({_state['why']}); LSTM/GRU with "
                "recurrent_dropout use the reference loop instead (same results, slower).",
                RuntimeWarning,
                stacklevel=3,
            )
    return _state["ext"]


def available() -> bool:
    """True when the compiled kernel can be used (building it on the first call)."""
    return _extension() is not None


def _step(step: Tensor | None, like: Tensor) -> Tensor:
    return torch.empty(0, dtype=torch.bool) if step is None else step.contiguous()


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw, w_hh, rmask, h0, c0, step):
        ext = _extension()
        out, hs, cs, hm, gates, tcs = ext.lstm_forward(
            xw.contiguous(), w_hh.contiguous(), rmask.contiguous(), h0.contiguous(), c0.contiguous(), step
        )
        ctx.save_for_backward(w_hh, rmask, cs, hm, gates, tcs, step)
        return out, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh, dc):
        w_hh, rmask, cs, hm, gates, tcs, step = ctx.saved_tensors
        dout = torch.zeros_like(cs[1:]) if dout is None else dout.contiguous()
        dh = torch.zeros_like(cs[0]) if dh is None else dh.contiguous()
        dc = torch.zeros_like(cs[0]) if dc is None else dc.contiguous()
        dxw, dw, dh0, dc0 = _extension().lstm_backward(
            dout, dh, dc, w_hh.contiguous(), rmask.contiguous(), cs, hm, gates, tcs, step
        )
        return dxw, dw, None, dh0, dc0, None


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw, w_hh, b_hh, rmask, h0, step):
        ext = _extension()
        out, hs, hm, gates, hpn = ext.gru_forward(
            xw.contiguous(), w_hh.contiguous(), b_hh.contiguous(), rmask.contiguous(), h0.contiguous(), step
        )
        ctx.save_for_backward(w_hh, b_hh, rmask, hs, hm, gates, hpn, step)
        return out, hs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh):
        w_hh, b_hh, rmask, hs, hm, gates, hpn, step = ctx.saved_tensors
        dout = torch.zeros_like(hs[1:]) if dout is None else dout.contiguous()
        dh = torch.zeros_like(hs[0]) if dh is None else dh.contiguous()
        dxw, dw, db, dh0 = _extension().gru_backward(dout, dh, w_hh.contiguous(), rmask.contiguous(), hs, hm,
                                                      gates, hpn, step)
        return dxw, dw, (db if b_hh.numel() else None), None, dh0, None


def lstm_recurrence(xw: Tensor, w_hh: Tensor, rmask: Tensor, h0: Tensor, c0: Tensor, step: Tensor | None = None):
    """Same contract as :func:`embdrop.kernels.reference.lstm_recurrence` (no zoneout); ``rmask`` is required."""
    return _LSTM.apply(xw, w_hh, rmask, h0, c0, _step(step, xw))


def gru_recurrence(xw: Tensor, w_hh: Tensor, b_hh: Tensor | None, rmask: Tensor, h0: Tensor, step: Tensor | None = None):
    """Same contract as :func:`embdrop.kernels.reference.gru_recurrence` (no zoneout); ``rmask`` is required."""
    b = b_hh if b_hh is not None else xw.new_empty(0)
    return _GRU.apply(xw, w_hh, b, rmask, h0, _step(step, xw))

"""One layer and one direction of an LSTM/GRU: which implementation runs, given the masks and the options.

This is where the recurrent layers' dispatch is decided, once per call, above the kernels: the kernels below
(:mod:`embdrop.kernels`) take tensors and keys and know nothing of what a mask means.

The result is the same on every path; only the speed differs:

- no recurrent mask, no zoneout and no ``lengths`` on CPU (or any of these but a recurrent mask or zoneout on
  another device): the input mask is applied up front and the weight-drop mask to the weight once per call, then
  PyTorch's fused ``torch.lstm``/``torch.gru`` runs (oneDNN on CPU, cuDNN on GPU);
- recurrent masks, zoneout or ``lengths`` on CPU: the fused C++ kernel of :mod:`embdrop.kernels.recurrence` (the
  reference loop if it cannot be built);
- recurrent masks or zoneout on CUDA (LSTM and GRU, float32 weights, Triton installed): the Triton steps of
  :mod:`embdrop.kernels.gpu_recurrence`, zoneout's masks hashed in the kernels from their keys;
- recurrent masks or zoneout on another device (or on CUDA without Triton: one warning), GRU with
  ``reset_after=False`` and the Elman RNN with either: the reference loop of :mod:`embdrop.kernels.reference`;
- while ``torch.export`` traces (eval mode: no mask is drawn): the reference cells under torch's ``scan``, so the
  exported program takes any sequence length and holds torch's ops only.

Every kernel takes the gates in the order ``nn.LSTM``/``nn.GRU`` store them (LSTM i, f, g, o; GRU r, z, n): the
weights go in as they are (a permuted copy of them cost 1.5 ms a call at H = 650, forward and backward).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from embdrop import _checks
from embdrop.functional.apply import apply_mask, keep_scale
from embdrop.functional.masks import HashedKeep
from embdrop.functional.steps import roll
from embdrop.kernels import build, gemm, gpu_recurrence, recurrence, reference

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass(frozen=True)
class Options:
    """What one call of :func:`run` needs to know about the layer."""

    cell: Literal["lstm", "gru", "rnn"]  # rnn: the tanh cell
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    weight_dropout: float = 0.0
    zoneout: float = 0.0
    variational: bool = True
    bias: bool = True
    training: bool = True
    reset_after: bool = True  # GRU: False is Cho et al.'s original form (the reference loop only)

    @property
    def gates(self) -> int:
        return GATES[self.cell]


@dataclass
class RecurrentMasks:
    """The keep-masks (0/1, unscaled) one call applies, indexed ``[layer][direction]``; None where unused.

    Attributes:
        input: (G, B, C) per-gate masks when recurrent_dropout > 0, else (1, B, C), fixed across T (variational);
            (B, T, C), one per step, when ``variational=False``. C is the layer's input size.
        recurrent: (G, B, H) per-gate masks on h(t-1), fixed across T.
        weight: (G*H, H) weight-drop mask on ``weight_hh``, shared by the batch (a
            :class:`~embdrop.functional.masks.HashedKeep`, drawn and not written, where the layer draws its own).
        zoneout_h, zoneout_c: (B, T, H) update masks: 1 takes the new value, 0 keeps the previous one.
    """

    input: list[list[Tensor | None]] = field(default_factory=list)
    recurrent: list[list[Tensor | None]] = field(default_factory=list)
    weight: list[list[Tensor | HashedKeep | None]] = field(default_factory=list)
    zoneout_h: list[list[Tensor | None]] = field(default_factory=list)
    zoneout_c: list[list[Tensor | None]] = field(default_factory=list)


def _on_gpu(device: torch.device) -> bool:
    """Whether ``device`` takes the GPU path (the tests fake it to run the Triton kernels under the interpreter)."""
    return device.type == "cuda"


def _gpu_loop(device: torch.device, opts: Options, dtype: torch.dtype) -> bool:
    """Whether a call with recurrent masks or zoneout runs the Triton steps: LSTM or GRU (reset_after), float32
    weights, Triton installed (else one warning, and the reference loop), nothing tracing."""
    if not _on_gpu(device) or opts.cell == "rnn" or not opts.reset_after or dtype != torch.float32:
        return False
    if _checks.tracing() or _checks.exporting():
        return False
    if not gpu_recurrence.installed():
        _warn_no_triton()
        return False
    return True


@functools.cache
def _warn_no_triton() -> None:
    warnings.warn(
        "embdrop: Triton is not installed, so recurrent dropout and zoneout on CUDA run the reference loop (the same "
        "results, many times slower); pip install triton",
        stacklevel=4,
    )


def hashes_zoneout(device: torch.device, cell: str) -> bool:
    """Whether a layer on ``device`` draws its zoneout masks as keys that the kernels hash (the GPU path)."""
    return _on_gpu(device) and cell != "rnn" and gpu_recurrence.installed()


def run(
    inp: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
    masks: RecurrentMasks | None,
    at: tuple[int, int],
    opts: Options,
    n: Tensor | None = None,
    out_shift: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(B, T, C) -> output (B, T, H), final h (B, H), final c (B, H) or None, in the time order of ``inp``, or with
    ``out_shift`` each output row b rotated forward by out_shift[b] along T.

    Args:
        inp: the input, batch first; every row post-padded when ``n`` is given.
        h0: the initial hidden state (B, H).
        c0: the initial cell state (B, H); None for GRU.
        weights: ``(weight_ih, weight_hh, bias_ih, bias_hh)`` in torch's layout and gate order.
        masks: the stack's keep-masks, given or drawn for this call; None when the call draws none (eval, rates 0).
        at: (layer, direction): which of ``masks`` this call applies.
        opts: the layer's rates and flags.
        n: (B,) lengths when some row is padded, else None.
        out_shift: (B,) int64 rotations in [0, T) of the output (a pre-padded batch's rows, moved to the front for
            the steps, put back), or None. The CPU kernel writes its output rotated; the other paths rotate it after.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    layer, d = at
    m_in, m_rec, m_w, zh, zc = (None,) * 5
    if masks is not None:
        m_in, m_rec, m_w = masks.input[layer][d], masks.recurrent[layer][d], masks.weight[layer][d]
        zh, zc = masks.zoneout_h[layer][d], masks.zoneout_c[layer][d]
    if m_w is not None:  # (G*H, H): one mask for the call, the batch shares it
        w_hh = apply_mask(w_hh, m_w, opts.weight_dropout)
    # given masks in eval: zoneout uses them rather than its expectation
    zoneout_eval = opts.zoneout > 0 and not opts.training and masks is None
    # torch.lstm/gru on a packed batch leave oneDNN for a slow generic path on CPU: with lengths, the CPU kernel
    # runs instead, with an all-ones state mask.
    # Traced (torch.export, torch.compile) with lengths: packing reads the lengths' values, so the reference loop
    # runs instead, its steps masked.
    traced_lengths = n is not None and _checks.tracing()
    packed_cpu = n is not None and inp.device.type == "cpu" and zh is None and build.available()
    packed_cpu = packed_cpu and not traced_lengths
    packed_cpu = packed_cpu and opts.reset_after and opts.cell != "rnn"
    unit = packed_cpu and m_rec is None and not zoneout_eval  # an all-ones mask, not to be rescaled
    if unit:
        m_rec = torch.ones(opts.gates, inp.shape[0], h0.shape[-1], dtype=inp.dtype, device=inp.device)
    # Exported in eval mode (torch.export): the reference cells under torch's scan, which leaves T free.
    scan = _checks.exporting() and not opts.training
    fused = m_rec is None and zh is None and not zoneout_eval and opts.reset_after
    if fused and not traced_lengths and not scan:
        if m_in is not None:
            mask = m_in[0].unsqueeze(1) if m_in.dim() == 3 and m_in.shape[0] == 1 and opts.variational else m_in
            inp = inp * (mask * keep_scale(opts.dropout))  # (B, T, C) * (B, 1, C) or (B, T, C)
        out, h, c = _torch_layer(inp, h0, c0, (w_ih, w_hh, b_ih, b_hh), opts, n)
        return (out if out_shift is None else roll(out, -out_shift)), h, c
    masks_in = (m_in, m_rec, zh, zc)
    return _loop(inp, h0, c0, (w_ih, w_hh, b_ih, b_hh), masks_in, opts, (n, out_shift), zoneout_eval, unit, scan)


def _torch_layer(inp, h0, c0, weights, opts: Options, n):
    """PyTorch's own recurrence (masks already applied): torch.lstm / torch.gru, packed when ``n`` is given."""
    w_ih, w_hh, b_ih, b_hh = weights
    lowp = torch.is_autocast_enabled("cpu") and inp.device.type == "cpu"
    if lowp and opts.cell == "lstm" and not build.onednn_supports(torch.get_autocast_dtype("cpu")):
        # oneDNN's LSTM has no bfloat16 primitive on CPUs without native bfloat16 (AVX2-only: nn.LSTM itself
        # fails there under autocast): this layer runs in its weights' dtype instead, as for ops autocast skips
        with torch.autocast("cpu", enabled=False):
            f = lambda t: None if t is None else t.to(w_ih.dtype)  # noqa: E731
            return _torch_layer(f(inp), f(h0), f(c0), weights, opts, n)
    params = [w_ih, w_hh] + ([b_ih, b_hh] if opts.bias else [])
    lstm = opts.cell == "lstm"
    hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if lstm else h0.unsqueeze(0)
    fn = torch.lstm if lstm else torch.gru if opts.cell == "gru" else torch.rnn_tanh
    if n is None:
        res = fn(inp, hx, params, opts.bias, 1, 0.0, opts.training, False, True)
        out = res[0]
    else:
        packed = pack_padded_sequence(inp, n, batch_first=True, enforce_sorted=False)
        idx = packed.sorted_indices
        hx = tuple(s.index_select(1, idx) for s in hx) if lstm else hx.index_select(1, idx)
        res = fn(packed.data, packed.batch_sizes, hx, params, opts.bias, 1, 0.0, opts.training, False)
        seq = PackedSequence(res[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        out = pad_packed_sequence(seq, batch_first=True, total_length=inp.shape[1])[0]
        res = (res[0],) + tuple(s.index_select(1, packed.unsorted_indices) for s in res[1:])
    return out, res[1][0], (res[2][0] if lstm else None)


def _loop(inp, h0, c0, weights, masks, opts: Options, padded, zoneout_eval: bool, unit: bool, scan: bool):
    """The step-by-step recurrence with per-gate masks: the C++ kernel on CPU, the reference loop elsewhere.
    ``masks``: this layer's and direction's (input, recurrent, zoneout h, zoneout c) keep-masks or None."""
    w_ih, w_hh, b_ih, b_hh = weights
    m_in, m_rec, zh, zc = masks
    n, out_shift = padded  # (B,) lengths and output rotations, or None
    G, T = opts.gates, inp.shape[1]
    gpu = _gpu_loop(inp.device, opts, w_hh.dtype)
    keys = gpu and isinstance(zh, HashedKeep)  # zoneout's masks as keys: hashed in the GPU kernels
    if not keys:  # written out where anything else reads them
        zh, zc = (z.tensor() if isinstance(z, HashedKeep) else z for z in (zh, zc))
    lstm = opts.cell == "lstm"
    b_in = None
    if opts.bias:
        b_in = b_ih + b_hh if lstm else b_ih
    use_cpp = not gpu and inp.device.type == "cpu" and opts.cell != "rnn" and opts.reset_after and build.available()
    use_cpp = use_cpp and not _checks.exporting() and not (n is not None and _checks.tracing())  # torch's ops only
    use_cpp = use_cpp and (m_rec is not None or zh is not None or zoneout_eval)  # the kernel has LSTM and GRU cells
    # the C++ kernel adds the input bias as its steps read the projection, without a pass of its own over it
    b_kernel, b_in = (b_in, None) if use_cpp else (None, b_in)
    xw = _project(inp, m_in, w_ih, b_in, G, opts.dropout, opts.variational)  # (G, T, B, H)
    xw = xw.to(w_hh.dtype)  # under torch.autocast the projection ran in lower precision; the state does not
    rm = None if m_rec is None else m_rec if unit else m_rec * keep_scale(opts.recurrent_dropout)
    step = None
    if n is not None:
        step = torch.arange(T, device=inp.device).unsqueeze(1) < n.to(inp.device).unsqueeze(0)  # (T, B)
    if zoneout_eval:
        zh = zc = 1.0 - opts.zoneout
    elif keys:
        zh, zc = (None if z is None else gpu_recurrence.HashedZoneout(z.key, z.threshold) for z in (zh, zc))
    else:
        zh = None if zh is None else zh.transpose(0, 1)  # (T, B, H)
        zc = None if zc is None else zc.transpose(0, 1)
    if use_cpp and rm is None:  # zoneout alone: the kernel multiplies by an all-ones state mask
        rm = torch.ones(G, inp.shape[0], h0.shape[-1], dtype=xw.dtype, device=inp.device)
    if use_cpp and torch.is_autocast_enabled("cpu"):  # the recurrent matrix products in autocast's precision
        w_hh = w_hh.to(torch.get_autocast_dtype("cpu"))
    if gpu:
        out, h, c = _gpu_steps(xw, (w_hh, b_hh if opts.bias else None), rm, h0, c0, step, (zh, zc), opts)
        return (out if out_shift is None else roll(out, -out_shift)), h, c
    c = None
    kernel_shift = out_shift if use_cpp else None  # the kernel writes its output rotated
    if lstm:
        if use_cpp:
            out, h, c = recurrence.lstm_recurrence(xw, w_hh, rm, h0, c0, step, zh, zc, b_kernel, kernel_shift)
        else:
            out, h, c = reference.lstm_recurrence(xw, w_hh, rm, h0, c0, step, zh, zc, scan=scan)
    elif opts.cell == "rnn":
        out, h = reference.rnn_recurrence(xw, w_hh, b_hh if opts.bias else None, rm, h0, step, zh, scan=scan)
    else:
        b_rec = b_hh if opts.bias else None
        if use_cpp:
            out, h = recurrence.gru_recurrence(xw, w_hh, b_rec, rm, h0, step, zh, b_kernel, kernel_shift)
        else:
            out, h = reference.gru_recurrence(xw, w_hh, b_rec, rm, h0, step, zh, opts.reset_after, scan=scan)
    out = out.transpose(0, 1)  # (B, T, H)
    return (out if out_shift is None or kernel_shift is not None else roll(out, -out_shift)), h, c


def _gpu_steps(xw, weights, rm, h0, c0, step, zones, opts: Options):
    """The Triton steps (GPU path): (B, T, H) output, final h, final c or None."""
    w_hh, b_hh = weights
    zh, zc = zones
    if torch.is_autocast_enabled(xw.device.type):  # the recurrent products in autocast's precision, the state not
        w_hh = w_hh.to(torch.get_autocast_dtype(xw.device.type))
    if opts.cell == "lstm":
        out, h, c = gpu_recurrence.lstm_recurrence(xw, w_hh, rm, h0, c0, step, zh, zc)
        return out.transpose(0, 1), h, c
    out, h = gpu_recurrence.gru_recurrence(xw, w_hh, b_hh, rm, h0, step, zh)
    return out.transpose(0, 1), h, None


def _skips_dropped(B: int, T: int, C: int, H: int, p: float, training: bool = False) -> bool:
    """Whether the input projection without the dropped channels' products is faster than the dense one, as
    benchmarks/masked_projection.py measured it: from p = 0.3 with sequences of T >= 16 steps and B * T >= 128 rows
    in all, more for larger weights (C * H / 2000: it lays the weights out anew on every call, which fewer rows do
    not pay back). A training step makes the masked copies either way (the weight's gradient needs them), which
    leaves less to gain: there from p = 0.4, where the input's gradient without the dropped channels
    (benchmarks/masked_input_grad.py) is faster too."""
    return p >= (0.4 if training else 0.3) and T >= 16 and max(128, C * H // 2000) <= B * T


def _project(inp, m_in, w_ih, b_in, G, p, variational):
    """Input projection (G, T, B, H) as one batched GEMM over all T; gate k sees its own input mask if it has one."""
    B, T, C = inp.shape
    H = w_ih.shape[0] // G
    # Per-gate masks: the G masked copies written time-first in one pass. Otherwise one time-first copy of the input,
    # masked once, shared by every gate, expanded (a reshape of the expanded transposed view copied it once per
    # gate, and a masked product of it was written transposed, then copied again).
    if m_in is not None and m_in.dim() == 3 and m_in.shape[0] == G and G > 1 and variational:
        xw = gemm.masked_projection(inp, m_in, keep_scale(p), w_ih) if _skips_dropped(B, T, C, H, p) else None
        if xw is not None:  # (G, T*B, H), without the dropped channels' products (no gradient needed)
            if b_in is not None:
                xw.add_(b_in.view(G, 1, H))
            return xw.view(G, T, B, H)
        # training: the product and the input's gradient without the dropped channels, where the sums are the dense
        # path's to the bit
        xw = gemm.masked_product(inp, m_in, keep_scale(p), w_ih) if _skips_dropped(B, T, C, H, p, True) else None
        if xw is not None:
            if b_in is not None:
                xw.add_(b_in.view(G, 1, H))
            return xw.view(G, T, B, H)
        xm = gemm.gate_inputs(inp, m_in, keep_scale(p)).reshape(G, T * B, C)  # gate k sees x * m_k
    else:
        xt = inp.transpose(0, 1).contiguous()  # (T, B, C)
        if m_in is not None:
            mask = m_in[0].unsqueeze(0) if variational else m_in.transpose(0, 1)  # (1, B, C) or (T, B, C)
            xt = xt * (mask * keep_scale(p))
        xm = xt.view(1, T * B, C).expand(G, T * B, C)
    xw = gemm.bmm(xm, w_ih.view(G, H, C).transpose(1, 2))  # (G, T*B, H)
    if b_in is not None:  # (baddbmm was slower: it writes the broadcast bias out first)
        xw.add_(b_in.view(G, 1, H))  # in place: a new (G, T, B, H) tensor costs its page faults every call
    return xw.view(G, T, B, H)

"""Recurrent dropout on a CUDA GPU: embdrop's LSTM/GRU (the Triton steps) against cuDNN without dropout and against
the reference loop. Needs a CUDA GPU and Triton; written on a machine without one (see RESULTS.md for whether it has
been run).

One step = forward + backward of the layer on a (B, T, C) batch (loss: the output's mean square). For each shape
and dtype, every variant and the baselines are timed in the same process, interleaved round by round after a
warm-up (which also compiles the Triton kernels), with the device synchronised around each step; the figures are
medians over rounds. Ratios: cuDNN's time over the variant's (1.0x: as fast as cuDNN without dropout; the issue's
goal is at least 1/1.3 = 0.77x at B >= 64, H >= 256 and 0.33x at B = 16) and the reference loop's time over the
variant's (the goal: at least 10x). Where H fits one tile (H <= 128), the single-launch kernels
(``EMBDROP_GPU_KERNEL=sequence``) are timed too. bfloat16 runs under ``torch.autocast`` with float32 weights, as
training does.

Run: python benchmarks/gpu.py [--rounds N] [--shapes 16,1024,768,768 ...] [--out FILE]  (writes a Markdown table)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from torch import nn

import embdrop
from embdrop.functional import recurrent as dispatch
from embdrop.kernels import gpu_recurrence

SHAPES = [(16, 1024, 768, 768), (64, 100, 512, 512), (32, 200, 64, 100), (128, 50, 300, 256)]
VARIANTS = {
    "dropout=recurrent_dropout=0.5": {"dropout": 0.5, "recurrent_dropout": 0.5},
    "zoneout=0.1": {"zoneout": 0.1},
    "weight_dropout=0.5": {"weight_dropout": 0.5},  # the mask on the weight once, then cuDNN: no step loop
}
REFERENCE_STEPS = 64  # the reference loop is timed on T = 64 steps and scaled to T (it is linear in T)


def _step(model, x, lowp: bool, kernel: str = "steps"):
    def run():
        os.environ["EMBDROP_GPU_KERNEL"] = kernel  # read on every call: one variant runs the single-launch kernels
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if lowp else contextlib.nullcontext()
        with ctx:
            out = model(x)[0]
        out.float().square().mean().backward()

    return run


def _timed(fn) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


@contextlib.contextmanager
def _reference_loop():
    """The reference loop on CUDA: the dispatch told that the Triton steps are not there."""
    real = dispatch._gpu_loop
    dispatch._gpu_loop = lambda *a: False
    try:
        yield
    finally:
        dispatch._gpu_loop = real


def measure(cell: str, shape, lowp: bool, rounds: int) -> dict[str, float]:
    B, T, C, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, C, device="cuda")
    x_ref = x[:, : min(T, REFERENCE_STEPS)].contiguous()
    cls_torch, cls_ours = (nn.LSTM, embdrop.LSTM) if cell == "lstm" else (nn.GRU, embdrop.GRU)
    fns = {"cuDNN, no dropout": _step(cls_torch(C, H, batch_first=True).cuda(), x, lowp)}
    for name, kw in VARIANTS.items():
        fns[name] = _step(cls_ours(C, H, **kw).cuda(), x, lowp)
    if gpu_recurrence.kernel_kind(H) == "steps" and H <= gpu_recurrence.SEQUENCE_MAX_H:  # H fits one tile
        fns["dropout=recurrent_dropout=0.5, single launch"] = _step(
            cls_ours(C, H, dropout=0.5, recurrent_dropout=0.5).cuda(), x, lowp, kernel="sequence"
        )
    ref_model = cls_ours(C, H, dropout=0.5, recurrent_dropout=0.5).cuda()
    times: dict[str, list[float]] = {k: [] for k in [*fns, "reference loop"]}
    for r in range(rounds + 1):  # round 0 warms up (and compiles)
        for name, fn in fns.items():
            t = _timed(fn)
            if r:
                times[name].append(t)
        with _reference_loop():
            t = _timed(_step(ref_model, x_ref, lowp)) * T / x_ref.shape[1]
        if r:
            times["reference loop"].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shapes", nargs="*", default=None, help="B,T,C,H each")
    ap.add_argument("--out", default="gpu_results.md")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU")
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else SHAPES
    lines = [f"Device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {args.rounds} rounds, medians.", ""]
    lines += [
        "| cell | dtype | (B, T, C, H) | variant | ms | vs cuDNN | vs reference loop |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in ("lstm", "gru"):
        for lowp in (False, True):
            for shape in shapes:
                med = measure(cell, shape, lowp, args.rounds)
                base, ref = med["cuDNN, no dropout"], med["reference loop"]
                for name, t in med.items():
                    row = f"| {cell} | {'bf16' if lowp else 'fp32'} | {shape} | {name} | {t * 1e3:.2f} | "
                    row += f"{base / t:.2f}x | {ref / t:.1f}x |"
                    lines.append(row)
                    print(row, flush=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("written:", args.out)


if __name__ == "__main__":
    main()

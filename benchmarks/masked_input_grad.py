"""The input's gradient through the per-gate masked projection without the dropped channels, against the dense one.

With per-gate input masks (``dropout`` of ``embdrop.LSTM``/``GRU``, Keras' semantics) gate k projects ``x * m_k``,
so the input's gradient is ``sum_k (g_k @ W_k) * m_k * s``: a channel dropped for sequence b in gate k is multiplied
by zero. The dense way computes every gate's (T*B, H) x (H, C) product (oneDNN's matmul) and sums them times the
masks (``gate_inputs_backward``); the kernel's ``masked_input_grad`` computes only the kept channels' products and
sums them as they come out. Per (B, T, C, H) and p, for the LSTM (G = 4): median ms of interleaved rounds, the ratio
dense / own (above 1: the own gradient is faster), the largest difference between the two, whether the two agree
in value on this CPU (checked once per shape), and what a training step takes (``_skips_dropped``, from p = 0.4,
at least as many sequences as threads, and the check). Run: python benchmarks/masked_input_grad.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from masked_projection import RATES, SHAPES

from embdrop.functional.recurrent import _skips_dropped
from embdrop.kernels import build, gemm


def cell(shape, p: float, rounds: int) -> tuple[float, float, float, float]:
    B, T, C, H = shape
    G = 4
    ext = build.extension()
    g = torch.Generator().manual_seed(0)
    dy = torch.randn(G, T * B, H, generator=g)
    w = torch.randn(G * H, C, generator=g) / C**0.5
    m = (torch.rand(G, B, C, generator=g) >= p).float()
    s = 1 / (1 - p)

    def dense():
        return ext.gate_inputs_backward(gemm.bmm(dy, w.view(G, H, C)).view(G, T, B, C), m, s)

    def own():
        return ext.masked_input_grad(dy, w, m, s, T)

    diff = (dense() - own()).abs().max().item()
    reps = max(1, int(2e8 / (2 * G * B * T * C * H)))
    times = {"dense": [], "own": []}
    for _ in range(rounds):
        for name, f in (("dense", dense), ("own", own)):
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            times[name].append((time.perf_counter() - t0) / reps * 1e3)
    ratio = statistics.median(d / o for d, o in zip(times["dense"], times["own"], strict=True))
    return statistics.median(times["dense"]), statistics.median(times["own"]), ratio, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    if not build.available():
        raise SystemExit("the fused kernel is not built on this machine: nothing to compare")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per input gradient (G = 4)")
    print("| (B, T, C, H) | p | dense (bmm + gate_inputs_backward) | masked_input_grad | dense / own | "
          "max difference | same values | training takes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with torch.no_grad():
        for shape in SHAPES:
            B, T, C, H = shape
            same = build.extension().masked_input_grad_exact(4, T * B, H, C)
            for p in RATES:
                d, o, r, diff = cell(shape, p, args.rounds)
                own = _skips_dropped(*shape, p, True) and torch.get_num_threads() <= B and same
                takes = "own" if own else "dense"
                cells = [shape, p, f"{d:.3f}", f"{o:.3f}", f"{r:.2f}x", f"{diff:.1e}", same, takes]
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)


if __name__ == "__main__":
    main()

"""The input projection of MC-dropout predictions without the dropped channels' products, against the dense one.

With per-gate input masks (``dropout`` of ``embdrop.LSTM``/``GRU``, Keras' semantics) each gate k projects
``x * m_k``: a dropped channel of sequence b adds nothing to any of its T rows. When no gradient is needed
(MC-dropout predictions) the kernel's ``masked_projection`` computes only the kept channels' products; the dense
way writes the G masked copies (``gate_inputs``) and multiplies them by the weights (oneDNN's matmul). Per
(B, T, C, H) and p, for the LSTM (G = 4): median ms of interleaved rounds, the ratio dense / masked (above 1: the
masked product is faster), and the largest difference between the two. ``functional/recurrent.py`` takes the masked
product where this table shows it faster (``_skips_dropped``). A training step makes the masked copies either way
(their product's gradient needs them) and takes the masked product at the same shapes where its sums are the dense
product's to the bit on this CPU (checked once per shape), from p = 0.4: the "training" column compares gate_inputs
+ bmm with gate_inputs + masked_projection, and the last says what a training step takes here.
Run: python benchmarks/masked_projection.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from embdrop.functional.recurrent import _skips_dropped
from embdrop.kernels import build, gemm

# benchmarks/recurrent.py's four shapes, then shapes about the rule's edges (few or short sequences, large weights)
SHAPES = [(32, 200, 64, 100), (64, 35, 200, 200), (20, 35, 650, 650), (128, 50, 300, 256), (1, 200, 200, 200),
          (8, 16, 200, 200), (64, 4, 200, 200), (256, 1, 200, 200), (1, 35, 650, 650), (4, 35, 650, 650),
          (10, 28, 650, 650), (32, 8, 650, 650), (16, 35, 1500, 1500),
          (64, 35, 1500, 1500)]  # fmt: skip
RATES = [0.1, 0.3, 0.5]


def cell(shape, p: float, rounds: int) -> tuple[float, float, float]:
    B, T, C, H = shape
    G = 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, C, generator=g)
    w = torch.randn(G * H, C, generator=g) / C**0.5
    m = (torch.rand(G, B, C, generator=g) >= p).float()
    s = 1 / (1 - p)
    wt = w.view(G, H, C).transpose(1, 2)

    def dense():
        return gemm.bmm(gemm.gate_inputs(x, m, s).reshape(G, T * B, C), wt)

    def masked():
        return gemm.masked_projection(x, m, s, w)

    def training():  # the masked copies made, then the masked product (gemm.masked_product's forward)
        gemm.gate_inputs(x, m, s)
        return masked()

    with torch.no_grad():
        diff = (dense() - masked()).abs().max().item()
        reps = max(1, int(2e8 / (2 * G * B * T * C * H)))
        times = {"dense": [], "masked": [], "training": []}
        for _ in range(rounds):
            for name, f in (("dense", dense), ("masked", masked), ("training", training)):
                t0 = time.perf_counter()
                for _ in range(reps):
                    f()
                times[name].append((time.perf_counter() - t0) / reps * 1e3)
    ratio, train = (
        statistics.median(d / o for d, o in zip(times["dense"], times[k], strict=True)) for k in ("masked", "training")
    )
    return statistics.median(times["dense"]), statistics.median(times["masked"]), ratio, train, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    if not build.available():
        raise SystemExit("the fused kernel is not built on this machine: nothing to compare")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per projection (G = 4)")
    print("| (B, T, C, H) | p | dense (gate_inputs + bmm) | masked_projection | dense / masked | training | "
          "max difference | MC takes | training takes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        B, T, C, H = shape
        same = build.extension().masked_projection_exact(4, T * B, C, H)
        for p in RATES:
            d, m, r, tr, diff = cell(shape, p, args.rounds)
            taken = "masked" if _skips_dropped(*shape, p) else "dense"
            train = "masked" if _skips_dropped(*shape, p, True) and same else "dense"
            cells = [shape, p, f"{d:.3f}", f"{m:.3f}", f"{r:.2f}x", f"{tr:.2f}x", f"{diff:.1e}", taken, train]
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)


if __name__ == "__main__":
    main()

"""The fused CPU kernel's three choices, measured side by side: which GEMM runs the products (oneDNN's float32
matmul or ATen's bmm, MKL), how the batch is split between threads (row blocks, each running all T steps on its
own, or one block whose per-step product and element-wise pass are parallel inside), and whether its large buffers
are reused between calls (csrc/pool.cpp) or left to malloc.

Per shape, interleaved rounds, medians: a training step (forward + backward) of ``embdrop.LSTM``/``GRU(dropout=0.5,
recurrent_dropout=0.5)`` in each variant, against ``nn.LSTM``/``nn.GRU`` without dropout in the same process; the
ratio is the baseline's time over the variant's (1.0x: as fast). "MKL" turns oneDNN off for embdrop's step only
(``torch.backends.mkldnn``), so the baseline keeps oneDNN's LSTM; "no pool" sets the pool's cap to 0 for embdrop's
step (its held blocks are released when it is turned off).
Run: python benchmarks/recurrent_blocks.py [--rounds N] [--kinds LSTM GRU] [--inference]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

import embdrop
from embdrop.kernels import build

SHAPES = [(32, 200, 64, 100), (64, 35, 200, 200), (20, 35, 650, 650), (128, 50, 300, 256)]
# (GEMM, row blocks (0: the kernel's rule), pool)
VARIANTS = [("oneDNN", 0, True), ("oneDNN", 1, True), ("oneDNN", 2, True), ("MKL", 0, True), ("oneDNN", 0, False)]
POOL_MB = 1024


def _name(gemm: str, blocks: int, pool: bool) -> str:
    return f"{gemm}, blocks {blocks or 'rule'}" + ("" if pool else ", no pool")


def _variant(gemm: str, blocks: int, pool: bool):
    ext = build.extension()

    @contextlib.contextmanager
    def ctx():
        ext.set_row_blocks(blocks)
        ext.set_pool_cap_mb(POOL_MB if pool else 0)
        was = torch._C._get_mkldnn_enabled()  # (torch.backends.mkldnn.flags warns about TF32 on every entry)
        torch._C._set_mkldnn_enabled(gemm != "MKL")
        try:
            yield
        finally:
            torch._C._set_mkldnn_enabled(was)
            ext.set_row_blocks(0)
            ext.set_pool_cap_mb(POOL_MB)

    return ctx


def measure(kind: str, shape, rounds: int, inference: bool) -> dict[str, float]:
    B, T, C, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, C)
    ours = getattr(embdrop, kind)(C, H, dropout=0.5, recurrent_dropout=0.5)
    base = getattr(nn, kind)(C, H, batch_first=True)
    if inference:
        base.eval()

    def step(m):
        if inference:  # MC dropout: masks on (train mode), no gradient
            with torch.no_grad():
                m(x)
            return
        m.zero_grad(set_to_none=True)
        m(x)[0].square().mean().backward()

    runs = {"baseline": (base, contextlib.nullcontext)}
    for v in VARIANTS:
        runs[_name(*v)] = (ours, _variant(*v))
    times: dict[str, list[float]] = {k: [] for k in runs}
    for m, ctx in runs.values():
        with ctx():
            for _ in range(2):
                step(m)
    for _ in range(rounds):
        for name, (m, ctx) in runs.items():
            with ctx():
                t0 = time.perf_counter()
                for _ in range(3):
                    step(m)
                times[name].append((time.perf_counter() - t0) / 3 * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--kinds", nargs="+", default=["LSTM", "GRU"])
    ap.add_argument("--inference", action="store_true", help="MC-dropout inference (no grad) instead of training")
    args = ap.parse_args()
    if not build.available():
        raise SystemExit("the fused CPU kernel is not built here: nothing to compare")
    what = "MC inference" if args.inference else "training step"
    onednn = build.extension().onednn_gemm_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, oneDNN GEMM available: {onednn}; {what}")
    names = ["baseline"] + [_name(*v) for v in VARIANTS]
    print("| kind | B,T,C,H | baseline ms | " + " | ".join(names[1:]) + " |")
    print("|---" * (len(names) + 2) + "|")
    for kind in args.kinds:
        for shape in SHAPES:
            t = measure(kind, shape, args.rounds, args.inference)
            cells = " | ".join(f"{t['baseline'] / t[n]:.2f}x" for n in names[1:])
            print(f"| {kind} | {','.join(map(str, shape))} | {t['baseline']:.1f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()

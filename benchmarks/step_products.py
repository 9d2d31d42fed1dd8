"""The recurrences' per-step products: the kernel's own GEMM (csrc/products.cpp) against the library call it replaces
(MKL's batched GEMM below oneDNN's size, oneDNN's matmul above), in one process, interleaved, medians over rounds.

Part 1, one call of a step's G products (M, H) x (H, H) on one thread (M: the rows of one thread's block), at the
recurrences' shapes: the time of each, whether the two results are equal to the bit, and whether the kernel uses its
own products there (it does only where they sum as the library does: see products.cpp).
Part 2, a training step (forward + backward + SGD) of `embdrop.LSTM(dropout=0.5, recurrent_dropout=0.5)`, the own
products on and off, against `nn.LSTM` without dropout: ratios are `nn.LSTM` time over ours, as in recurrent.py.
Run: python benchmarks/step_products.py [--rounds 15] [--reps 200] [--steps]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from torch import nn

import embdrop
from embdrop.kernels import build

PRODUCTS = [(4, 16, 64), (4, 16, 100), (3, 16, 100), (4, 32, 100), (4, 4, 128), (4, 16, 192), (4, 32, 200),
            (4, 64, 200), (4, 8, 256), (4, 10, 650), (4, 2, 100), (4, 16, 1500)]  # fmt: skip
STEPS = [(32, 200, 64, 100), (64, 35, 200, 200), (20, 35, 650, 650), (128, 50, 300, 256)]


def products(rounds: int, reps: int) -> None:
    ext = build.extension()
    torch.set_num_threads(1)
    print("| G, M, H | library us | own us | library / own | equal to the bit | the kernel uses its own |")
    print("|---|---|---|---|---|---|")
    for G, M, H in PRODUCTS:
        torch.manual_seed(0)
        a, b = torch.randn(G, M, H), torch.randn(G, H, H) / H**0.5
        bp = ext.pad_columns(b)  # as a recurrence pads W_hh once per sequence
        calls = {
            "library": lambda a=a, b=b: ext.gate_products(a, b, None),
            "own": lambda a=a, b=b, bp=bp: ext.gate_products(a, b, bp),
        }
        equal = torch.equal(calls["library"](), calls["own"]())
        times = {k: [] for k in calls}
        n = max(1, reps * 100 // H)
        for _ in range(rounds):
            for name in random.sample(list(calls), len(calls)):
                t0 = time.perf_counter()
                for _ in range(n):
                    calls[name]()
                times[name].append((time.perf_counter() - t0) / n * 1e6)
        lib, own = (statistics.median(times[k]) for k in ("library", "own"))
        used = ext.own_products(G, M, H, H)
        print(f"| {G}, {M}, {H} | {lib:.1f} | {own:.1f} | {lib / own:.2f}x | {equal} | {used} |", flush=True)


def make_step(model, x):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.square().mean().backward()
        opt.step()

    return step


def steps(rounds: int) -> None:
    ext = build.extension()
    print(f"\n{torch.get_num_threads()} threads; training step, nn.LSTM time over ours (median of {rounds} rounds)")
    print("| B, T, C, H | nn.LSTM ms | library ms | own ms | library | own | own / library |")
    print("|---|---|---|---|---|---|---|")
    for B, T, C, H in STEPS:
        torch.manual_seed(0)
        x = torch.randn(B, T, C)
        base = nn.LSTM(C, H, batch_first=True)
        ours = embdrop.LSTM(C, H, dropout=0.5, recurrent_dropout=0.5)
        ours.load_state_dict(base.state_dict())
        run = {"base": make_step(base, x), "ours": make_step(ours, x)}

        def variant(name, run=run):
            if name != "base":
                ext.set_own_products(name == "own")
            run["base" if name == "base" else "ours"]()

        names = ["base", "library", "own"]
        for name in names * 2:
            variant(name)
        times = {k: [] for k in names}
        for _ in range(rounds):
            for name in random.sample(names, len(names)):
                t0 = time.perf_counter()
                variant(name)
                times[name].append(time.perf_counter() - t0)
        ext.set_own_products(True)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        r = {k: statistics.median(b / o for b, o in zip(times["base"], times[k], strict=True)) for k in names[1:]}
        ratio = statistics.median(lib / own for lib, own in zip(times["library"], times["own"], strict=True))
        print(f"| {B}, {T}, {C}, {H} | {med['base']:.1f} | {med['library']:.1f} | {med['own']:.1f} | "
              f"{r['library']:.2f}x | {r['own']:.2f}x | {ratio:.2f}x |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--steps", action="store_true", help="part 2 as well")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, kernel available: {build.available()}")
    threads = torch.get_num_threads()
    products(args.rounds, args.reps)
    torch.set_num_threads(threads)
    if args.steps:
        steps(args.rounds)


if __name__ == "__main__":
    main()

"""Embedding dropout against a plain lookup: forward + backward of embdrop's ``Embedding(V, E, dropout=0.1)`` in
training mode (one mask value per word type per sequence, Gal's embedding dropout) against ``nn.Embedding(V, E)``,
dense and sparse gradients, in the same process, interleaved, median over rounds.

The ratio printed is plain time / ours (1.0: free; the target is >= 0.91, within 10%).
Run: python benchmarks/embedding.py [--rounds 15] [--reps 20]
"""

import argparse
import statistics
import time

import torch
from torch import nn

from embdrop import Embedding


def step(layer: nn.Module, ids: torch.Tensor, w: torch.Tensor) -> None:
    layer.weight.grad = None
    (layer(ids) * w).sum().backward()


def measure(V: int, B: int, T: int, E: int, sparse: bool, rounds: int, reps: int) -> tuple[float, float, float]:
    torch.manual_seed(0)
    plain = nn.Embedding(V, E, sparse=sparse)
    ours = Embedding(V, E, dropout=0.1, sparse=sparse)
    ours.weight.data.copy_(plain.weight.data)
    ids = torch.randint(0, V, (B, T)) if V < 50_000 else torch.randint(0, 50_000, (B, T)) * (V // 50_000)
    w = torch.randn(B, T, E)
    for layer in (plain, ours):
        for _ in range(3):
            step(layer, ids, w)
    times = {"plain": [], "ours": []}
    for _ in range(rounds):
        for name, layer in (("plain", plain), ("ours", ours)):
            t0 = time.perf_counter()
            for _ in range(reps):
                step(layer, ids, w)
            times[name].append((time.perf_counter() - t0) / reps)
    ratio = statistics.median(p / o for p, o in zip(times["plain"], times["ours"], strict=True))
    return statistics.median(times["plain"]) * 1e3, statistics.median(times["ours"]) * 1e3, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| V | B, T, E | gradient | plain ms | embedding dropout ms | ratio (plain / ours) |")
    print("|---|---|---|---|---|---|")
    for V in (10_000, 1_000_000):
        for B, T, E in ((64, 35, 300), (32, 200, 64)):
            for sparse in (False, True):
                p, o, r = measure(V, B, T, E, sparse, args.rounds, args.reps)
                grad = "sparse" if sparse else "dense"
                print(f"| {V:,} | {B}, {T}, {E} | {grad} | {p:.3f} | {o:.3f} | {r:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

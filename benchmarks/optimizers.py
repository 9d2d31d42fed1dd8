"""The recipes' RMSprop against torch's, one optimizer step on an embedding-like parameter, in one process,
interleaved, median over rounds; both make the same update to the bit (tests/recipes/test_train_setup.py).

The gradient is an embedding's: rows of zeros (ids not in the batch) and normal values elsewhere, so that the running
average of squared gradients holds the zeros torch's CPU sqrt is slow on; and rows with none. glibc keeps freed
memory, as in every training run. The ratio printed is torch's time / ours.
Run: python benchmarks/optimizers.py [--rounds 30] [--reps 20]
"""

import argparse
import statistics
import time

import torch

from embdrop.recipes.losses import keep_freed_memory
from embdrop.recipes.train_setup import RMSprop


def measure(kind: str, V: int, E: int, zero_rows: float, rounds: int, reps: int) -> tuple[float, float, float]:
    torch.manual_seed(0)
    grad = torch.randn(V, E)
    grad[torch.rand(V) < zero_rows] = 0.0
    ours_cls, torch_cls, kw = {"rmsprop": (RMSprop, torch.optim.RMSprop, dict(lr=1e-3, alpha=0.9, eps=1e-7))}[kind]
    pairs = {}
    for name, cls in (("torch", torch_cls), ("ours", ours_cls)):
        w = torch.nn.Parameter(torch.randn(V, E))
        opt = cls([w], **kw)
        w.grad = grad
        for _ in range(3):
            opt.step()
        pairs[name] = opt
    times = {"torch": [], "ours": []}
    for _ in range(rounds):
        for name, opt in pairs.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                opt.step()
            times[name].append((time.perf_counter() - t0) / reps)
    ratio = statistics.median(t / o for t, o in zip(times["torch"], times["ours"], strict=True))
    return statistics.median(times["torch"]) * 1e3, statistics.median(times["ours"]) * 1e3, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    # as every training run does (recipes/runs.py): otherwise each step's temporaries are page-faulted afresh
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, keep_freed_memory: {keep_freed_memory()}")
    print("| optimizer | V, E | zero rows | torch ms | ours ms | ratio (torch / ours) |")
    print("|---|---|---|---|---|---|")
    for kind in ("rmsprop",):
        for V, E in ((10_000, 16), (10_000, 64), (100_000, 64)):
            for zero_rows in (0.0, 0.67):
                t, o, r = measure(kind, V, E, zero_rows, args.rounds, args.reps)
                print(f"| {kind} | {V:,}, {E} | {zero_rows:.0%} | {t:.3f} | {o:.3f} | {r:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

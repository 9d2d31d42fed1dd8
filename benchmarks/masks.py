"""Keep-mask sampling: embdrop's samplers against torch's ``bernoulli_(1 - p)``.

``bernoulli_keep`` draws one uniform number per entry (``u < 1 - p``): on the CPU in float32 the fused kernel draws
the same numbers of the same generator (torch's ``uniform_`` then ``lt_``, the row below it, gives the same bits);
``bernoulli_keep_hashed`` (weight drop's) draws one random key and hashes each entry's index in parallel. Each ratio
printed is the median over rounds of ``bernoulli_`` time / the sampler's, for the weight-drop mask of an LSTM with
H = 650 (2600 x 650) and for an LSTM's four per-gate recurrent masks at (B, H) = (64, 200).
Run: python benchmarks/masks.py
"""

import statistics
import time

import torch

from embdrop.functional.masks import bernoulli_keep, bernoulli_keep_hashed
from embdrop.kernels import build


def table(shape, p: float, rounds: int, reps: int) -> None:
    g = torch.Generator().manual_seed(0)
    samplers = {
        "bernoulli_": lambda: torch.empty(shape).bernoulli_(1 - p, generator=g),
        "uniform_ + lt_ (torch)": lambda: torch.empty(shape).uniform_(generator=g).lt_(1 - p),
        "bernoulli_keep": lambda: bernoulli_keep(shape, p, device="cpu", generator=g),
        "bernoulli_keep_hashed": lambda: bernoulli_keep_hashed(shape, p, device="cpu", generator=g),
    }
    times = {k: [] for k in samplers}
    for f in samplers.values():  # warm-up
        f()
    for _ in range(rounds):
        for k, f in samplers.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            times[k].append((time.perf_counter() - t0) / reps)
    print(f"\nmask {shape}, p = {p}")
    print("| sampler | ms | ratio to bernoulli_ |")
    print("|---|---|---|")
    for k, ts in times.items():
        ratio = statistics.median(b / o for b, o in zip(times["bernoulli_"], ts, strict=True))
        print(f"| `{k}` | {statistics.median(ts) * 1e3:.3f} | {ratio:.2f}x |")


def main() -> None:
    kernel = build.available()  # loaded before timing (built on a first run)
    built = "built" if kernel else "absent"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fused kernel {built}")
    table((2600, 650), 0.5, rounds=15, reps=1)
    table((4, 64, 200), 0.5, rounds=15, reps=50)


if __name__ == "__main__":
    main()

"""Keep-mask sampling: embdrop's samplers against torch's ``bernoulli_(1 - p)``.

``bernoulli_keep`` draws one uniform number per entry (``u < 1 - p``); ``bernoulli_keep_hashed`` (weight drop's)
draws one random key and hashes each entry's index in parallel. Each ratio printed is the median over rounds of
``bernoulli_`` time / the sampler's, for the weight-drop mask of an LSTM with H = 650 (2600 x 650).
Run: python benchmarks/masks.py
"""

import statistics
import time

import torch

from embdrop.functional.masks import bernoulli_keep, bernoulli_keep_hashed


def main() -> None:
    shape, p, rounds = (2600, 650), 0.5, 15
    g = torch.Generator().manual_seed(0)
    samplers = {
        "bernoulli_": lambda: torch.empty(shape).bernoulli_(1 - p, generator=g),
        "bernoulli_keep": lambda: bernoulli_keep(shape, p, generator=g),
        "bernoulli_keep_hashed": lambda: bernoulli_keep_hashed(shape, p, generator=g),
    }
    times = {k: [] for k in samplers}
    for f in samplers.values():  # warm-up (and the kernel build, on a first run)
        f()
    for _ in range(rounds):
        for k, f in samplers.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mask {shape}")
    print("| sampler | ms | ratio to bernoulli_ |")
    print("|---|---|---|")
    for k, ts in times.items():
        ratio = statistics.median(b / o for b, o in zip(times["bernoulli_"], ts, strict=True))
        print(f"| `{k}` | {statistics.median(ts) * 1e3:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

"""Keep-mask sampling: embdrop's ``bernoulli_keep`` (uniform < 1 - p) against torch's ``bernoulli_(1 - p)``.

Both draw an exact Bernoulli(1 - p) mask; the ratio printed is the median over rounds of bernoulli_ time / ours,
for the weight-drop mask of an LSTM with H = 650 (2600 x 650). Run: python benchmarks/masks.py
"""

import statistics
import time

import torch

from embdrop.functional.masks import bernoulli_keep


def main() -> None:
    shape, p, rounds = (2600, 650), 0.5, 15
    g = torch.Generator().manual_seed(0)
    ours = lambda: bernoulli_keep(shape, p, generator=g)  # noqa: E731
    base = lambda: torch.empty(shape).bernoulli_(1 - p, generator=g)  # noqa: E731
    for f in (ours, base):
        f()
    t_ours, t_base = [], []
    for _ in range(rounds):
        for f, acc in ((base, t_base), (ours, t_ours)):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)
    ratio = statistics.median(b / o for b, o in zip(t_base, t_ours, strict=True))
    print(
        f"mask {shape}: bernoulli_ {statistics.median(t_base) * 1e3:.1f} ms, "
        f"bernoulli_keep {statistics.median(t_ours) * 1e3:.1f} ms, ratio {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()

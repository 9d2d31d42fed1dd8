"""Start-up time: importing embdrop and its first calls against importing torch and torch's own first calls.

Each row is a fresh Python process (``python -c CODE``, wall time from start to exit, the interpreter's own start
included); the rows run interleaved round by round and the figure is the median over rounds. The ratio column
divides each embdrop row by the torch row it answers to: ``import embdrop`` and ``embdrop --help`` by ``import
torch``; the layers' import and first training step (LSTM with dropout and recurrent dropout, its fused kernel
loaded from the cache) by the same with ``nn.LSTM``. The kernel must have been built once before (any LSTM call
with recurrent dropout builds it).
Run: python benchmarks/startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

STEP = "x = torch.randn(8, 20, 16); out, _ = m(x); out.sum().backward()"
ROWS = {
    "import torch": ("import torch", None),
    "import embdrop": ("import embdrop", "import torch"),
    "embdrop --help": (
        "import sys, embdrop.cli\ntry:\n    embdrop.cli.main(['--help'])\nexcept SystemExit:\n    pass",
        "import torch",
    ),  # fmt: skip
    "nn.LSTM: import and one training step": (
        f"import torch\nm = torch.nn.LSTM(16, 32, batch_first=True)\n{STEP}",
        None,
    ),  # fmt: skip
    "embdrop.LSTM(dropout, recurrent_dropout): import and one training step": (
        "import torch\nfrom embdrop import LSTM\nm = LSTM(16, 32, dropout=0.5, recurrent_dropout=0.5)\n" + STEP,
        "nn.LSTM: import and one training step",
    ),
}


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    timed(ROWS["embdrop.LSTM(dropout, recurrent_dropout): import and one training step"][0])  # warm: kernel cached
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(args.rounds):
        for name, (code, _) in ROWS.items():
            times[name].append(timed(code))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"Python {sys.version.split()[0]}; median of {args.rounds} interleaved rounds, one process per row")
    print("| what | seconds | against | ratio |")
    print("|---|---|---|---|")
    for name, (_, base) in ROWS.items():
        ratio = f"{median[name] / median[base]:.2f}x" if base else ""
        print(f"| {name} | {median[name]:.2f} | {base or ''} | {ratio} |")


if __name__ == "__main__":
    main()

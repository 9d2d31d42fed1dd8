"""Training beside another busy process: `embdrop train reviews-lstm` epoch times alone and with one CPU-bound process
running beside it, for the thread settings a user can choose, in one run.

A run's epoch time is the median of its epochs after the first (the first holds one-off costs). The busy process is
``python -c "while True: pass"`` (one core); it starts before the run and stops after it. The settings:

- ``threads=N``: ``--set train.threads=N``; N = the machine's cores is what torch does by itself (the "before").
- ``threads=N, passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning).
- ``threads unset``: embdrop's default, the cores that are idle when the run starts (the "after").

Run: python benchmarks/shared_cores.py [--epochs 3] [--recipe reviews-lstm]
Nothing else should run on the machine meanwhile (another training run, a build, a test suite).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def epoch_seconds(recipe: str, epochs: int, threads: int | None, env: dict[str, str]) -> float:
    """Median seconds of the epochs after the first, from the run's metrics.jsonl."""
    out = Path(tempfile.mkdtemp(prefix="embdrop-shared-"))
    try:
        cmd = [shutil.which("embdrop") or "embdrop", "train", recipe, "--set", f"train.epochs={epochs}",
               "--out", str(out / "run")]  # fmt: skip
        if threads is not None:
            cmd += ["--set", f"train.threads={threads}"]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return statistics.median(r["seconds"] for r in rows[1:] or rows)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="reviews-lstm")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    settings = [(f"threads={cores}", cores, {}), (f"threads={cores}, passive", cores, {"OMP_WAIT_POLICY": "PASSIVE"}),
                ("threads=1", 1, {}), ("threads unset (embdrop's default)", None, {})]  # fmt: skip
    print(f"{args.recipe}, {args.epochs} epochs, {cores} cores; seconds per epoch (median after the first)")
    print("| setting | alone | beside a busy process | beside / alone |")
    print("|---|---|---|---|")
    for name, threads, extra in settings:
        env = {**os.environ, **extra}
        alone = epoch_seconds(args.recipe, args.epochs, threads, env)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)  # let it take its core before the run counts the idle ones
            beside = epoch_seconds(args.recipe, args.epochs, threads, env)
        finally:
            busy.kill()
            busy.wait()
        print(f"| {name} | {alone:.2f} | {beside:.2f} | {beside / alone:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

"""Test perplexity of a finished ``ptb-lm`` run's best weights under other evaluation settings than the run's own:
how many parallel streams the test split is cut into, and how MC dropout draws its masks. Used to tell how much of
a gap to a paper's number comes from the evaluation rather than from the trained model.

- ``--streams``: ``data.eval_batch_size`` values. The run evaluates 10 parallel streams (each starts from a zero
  state); Zaremba's and Gal's Lua code run the test split as one stream (batch 1).
- ``--mc N --mc-masks stream window``: MC-dropout perplexity over N samples with one mask set per sample for the
  whole split and embedding dropout off (Gal's test), or new masks every window with every dropout on.

Each line: the setting, the perplexity, the seconds it took. The global RNG is seeded with ``--seed`` before
each MC evaluation, as ``embdrop train`` seeds its own with ``train.seed``.

Run: python benchmarks/ptb_eval.py runs/ptb-variational-medium --streams 10 1 --mc 100 --mc-masks stream window
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from embdrop import recipes
from embdrop.recipes import language_model as lm


def evaluate(run: Path, overrides: list[str], mc: int, seed: int) -> tuple[float, float]:
    config = recipes.load_config(run, "RUN", overrides)
    task = lm.task(config)
    model = lm.build(config, task)
    model.load_state_dict(load_file(run / "best.safetensors"))
    torch.manual_seed(seed)
    start = time.perf_counter()
    result = task.evaluate(model, "test", mc=mc)
    return result["mc_perplexity" if mc else "perplexity"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--streams", type=int, nargs="*", default=[10, 1])
    parser.add_argument("--mc", type=int, default=0)
    parser.add_argument("--mc-masks", nargs="*", default=["stream", "window"], choices=lm.MC_MASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.run}: test perplexity of best.safetensors")
    for b in args.streams:
        ppl, seconds = evaluate(args.run, [f"data.eval_batch_size={b}"], 0, args.seed)
        print(f"  {b} parallel stream(s): {ppl:.2f} ({seconds:.0f} s)", flush=True)
    if args.mc:
        for masks in args.mc_masks:
            ppl, seconds = evaluate(args.run, [f"data.mc_masks={masks}"], args.mc, args.seed)
            print(f"  MC dropout, {args.mc} samples, mc_masks={masks}: {ppl:.2f} ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

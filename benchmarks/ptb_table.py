"""The Penn Treebank table of RESULTS.md, read from run directories: the committed ones under
``benchmarks/runs/`` by default, or any ``embdrop train ptb-lm`` run (a finished run has ``summary.json``; one in
progress prints its epochs so far).

Each row: the variant and its dropout rates, precision, test perplexity of the best validation epoch's weights,
MC-dropout test perplexity (``train.mc`` samples) when the run computed it, the best validation perplexity and its
epoch, and the epoch times (median and range over the epochs in ``metrics.jsonl``; epochs that shared the machine
with other work, or were paused, are longer: say which in the text that quotes them).

To commit a finished run's small artefacts (no checkpoints):

    mkdir -p benchmarks/runs/NAME && cp runs/NAME/{config.json,metrics.jsonl,summary.json,curve.png} \\
        benchmarks/runs/NAME/

Run: python benchmarks/ptb_table.py [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def row(run: Path) -> str:
    config = json.loads((run / "config.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    m, t = config["model"], config["train"]
    rates = (f"embedding {m['embedding_dropout']}, input {m['input_dropout']}, between layers {m['hidden_dropout']}, "
             f"recurrent {m['recurrent_dropout']}, output {m['output_dropout']}")  # fmt: skip
    kind = f"`{config.get('variant')}` ({m['layers']} x {m['hidden']}, {rates}; " + (
        "masks fixed over time)" if m["variational"] else "a new mask every step)"
    )
    best = min(metrics, key=lambda r: r["valid_perplexity"]) if metrics else None
    seconds = [r["seconds"] for r in metrics]
    times = (f"{len(metrics)} of {t['epochs']} epochs; median {statistics.median(seconds):.0f} s "
             f"({min(seconds):.0f}-{max(seconds):.0f})") if seconds else "no epoch yet"  # fmt: skip
    valid = f"{best['valid_perplexity']:.2f} (epoch {best['epoch']})" if best else "-"
    summary_path = run / "summary.json"
    if summary_path.is_file():
        test = json.loads(summary_path.read_text())["test"]
        ppl = f"{test['perplexity']:.2f}"
        # runs written before data.mc_masks existed drew new masks every window
        masks = config["data"].get("mc_masks", "window")
        if not m["variational"]:  # naive dropout draws a new mask every step, in training and in each sample
            how = "a new mask every step"
        elif masks == "stream":
            how = "masks fixed over the split, embedding dropout off"
        else:
            how = "new masks every window"
        mc = f"{test['mc_perplexity']:.2f} ({t['mc']} samples, {how})" if "mc_perplexity" in test else "-"
    else:
        ppl, mc = "running", "running"
    return f"| {kind} | {t['precision']} | {ppl} | {mc} | {valid} | {times} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run directories (default: benchmarks/runs/ptb-*)")
    args = ap.parse_args()
    runs = args.runs or sorted((HERE / "runs").glob("ptb-*"))
    if not runs:
        raise SystemExit("ptb_table: no run directories given and none under benchmarks/runs/")
    print("| variant | precision | test perplexity | MC-dropout test perplexity | best validation | epochs, time |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        print(row(run))


if __name__ == "__main__":
    main()

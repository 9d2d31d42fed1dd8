"""One training step of the PTB language model (``ptb-lm --set variant=none``: 2 x 200 LSTM, V = 10,000, batch 20,
BPTT 20, SGD, clipping): the decoder + ``F.cross_entropy`` against embdrop's fused ``linear_cross_entropy``.

The ids are random (the step time does not depend on the text), so no corpus is needed. Rounds alternate between
the two losses on the same model; the ratio printed is the median of baseline time / fused time.

Run: python benchmarks/lm_step.py [--keep-freed-memory] [--variant none|naive|variational|awd] [--bfloat16]
[--set FIELD=VALUE ...] [--profile]
(``--keep-freed-memory`` applies the glibc setting that ``embdrop train`` applies; run once with and once without.)
With ``--bfloat16`` both sides use the fused loss and the comparison is ``train.precision``: float32 against the
step under ``torch.autocast`` to bfloat16 (what ``--set train.precision=bfloat16`` does).
``--set`` changes the preset as ``embdrop train --set`` does (``--set model.hidden=400``); ``awd`` adds its AR/TAR
terms and runs windows of exactly ``data.bptt`` steps (training varies them around it). ``--profile`` then prints
the operators that took the most time in 5 more fused steps, and the minutes per epoch of PTB's 929,589 tokens.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from embdrop import recipes
from embdrop.recipes.language_model import LmModel, LstmLm
from embdrop.recipes.losses import keep_freed_memory, linear_cross_entropy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep-freed-memory", action="store_true")
    ap.add_argument("--variant", default="none", choices=("none", "naive", "variational", "awd"))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a preset field")
    ap.add_argument("--profile", action="store_true", help="print the top operators of 5 fused steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bfloat16", action="store_true", help="compare float32 with bfloat16 autocast (both fused)")
    args = ap.parse_args()
    if args.keep_freed_memory:
        print("keep_freed_memory:", keep_freed_memory())
    cfg = recipes.resolve("ptb-lm", [f"variant={args.variant}", *args.set])
    m: LmModel = cfg.model
    V, B, T = 10_000, cfg.train.batch_size, cfg.data.bptt
    torch.manual_seed(0)
    model = LstmLm(V, m)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    ids = torch.randint(0, V, (args.steps, B, T + 1))

    def step(x, y, ours):
        fused = ours or args.bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bfloat16 and ours):
            h, _, raw, _ = model(x, decode=False)  # (B, T, E): the dropped last output
            if fused:
                loss = linear_cross_entropy(h.reshape(-1, h.shape[-1]), model.decoder.weight, model.decoder.bias,
                                            y.reshape(-1))  # fmt: skip
            else:
                loss = F.cross_entropy(model.decoder(h).reshape(-1, V), y.reshape(-1))
            if m.ar > 0 or m.tar > 0:  # AWD-LSTM's activation regularisers, as the recipe's loss adds them
                loss = loss + m.ar * h.pow(2).mean() + m.tar * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip)
        opt.step()
        return loss.item()

    def run(fused):
        t0 = time.perf_counter()
        for k in range(args.steps):
            step(ids[k, :, :-1], ids[k, :, 1:], fused)
        return (time.perf_counter() - t0) / args.steps

    model.train()
    run(False), run(True)  # warm-up
    base, ours = [], []
    for _ in range(args.rounds):
        base.append(run(False))
        ours.append(run(True))
    ratio = statistics.median(b / o for b, o in zip(base, ours, strict=True))
    names = ("float32", "bfloat16") if args.bfloat16 else ("decoder + cross_entropy", "fused")
    n = sum(p.numel() for p in model.parameters())
    sizes = f"E={m.embedding_dim}, H={m.hidden}, L={m.layers}, {n:,} parameters"
    print(
        f"ptb-lm {args.variant} step (B={B}, T={T}, V={V}; {sizes}): {names[0]} "
        f"{statistics.median(base) * 1e3:.1f} ms, {names[1]} {statistics.median(ours) * 1e3:.1f} ms, ratio {ratio:.2f}x"
    )
    steps = 929_589 // (B * T)
    print(f"PTB epoch: {steps} steps, {steps * statistics.median(ours) / 60:.1f} min at the {names[1]} step")
    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            for k in range(min(5, args.steps)):
                step(ids[k, :, :-1], ids[k, :, 1:], True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()

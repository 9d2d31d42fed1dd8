"""Where an LSTM step's time goes: the recurrent matrix products with per-gate masks against one unmasked product.

An LSTM without recurrent masks multiplies h(t-1) (B, H) by all four gates' weights at once: one (B, H) x (H, 4H)
product per step. With Keras' per-gate recurrent masks every gate sees its own masked copy of h, so a step needs
four (B, H) x (H, H) products (embdrop's kernel: one batched call, ``bmm`` of (4, B, H) x (4, H, H)): the same
flops in narrower calls. This script times, per shape and in one process, interleaved, medians over rounds:

- ``mm``: T steps of the one product, (B, H) x (H, 4H) (the floor of any LSTM's recurrence: what torch's runs);
- ``bmm``: T steps of the four masked products (what recurrent dropout needs at the least);
- ``nn.LSTM fwd``: torch's whole forward in eval under no_grad (oneDNN);
- ``embdrop fwd (MC)``: embdrop's LSTM with dropout = recurrent_dropout = 0.5 in training mode under no_grad (what
  MC dropout runs);
and prints the ratios that bound what the masked recurrence can reach: nn.LSTM fwd / (bmm + the rest of
embdrop's step) cannot beat nn.LSTM fwd / bmm-alone when the products dominate.
Run: python benchmarks/recurrent_floor.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import embdrop

SHAPES = [(32, 200, 64, 100), (64, 35, 200, 200), (20, 35, 650, 650), (128, 50, 300, 256)]


def per_call(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per forward, medians of {args.rounds}")
    print("| (B, T, C, H) | mm x T | bmm x T | bmm / mm | nn.LSTM fwd | embdrop fwd (MC) | nn / embdrop | nn / bmm |")
    print("|---|---|---|---|---|---|---|---|")
    torch.manual_seed(0)
    for B, T, C, H in SHAPES:
        h = torch.randn(B, H)
        w = torch.randn(H, 4 * H)
        hm = torch.randn(4, B, H)
        w4 = torch.randn(4, H, H)
        out, out4 = torch.empty(B, 4 * H), torch.empty(4, B, H)
        x = torch.randn(B, T, C)
        ref = torch.nn.LSTM(C, H, batch_first=True).eval()
        ours = embdrop.LSTM(C, H, dropout=0.5, recurrent_dropout=0.5).train()

        def mm(h=h, w=w, out=out, T=T):
            for _ in range(T):
                torch.mm(h, w, out=out)

        def bmm(hm=hm, w4=w4, out4=out4, T=T):
            for _ in range(T):
                torch.bmm(hm, w4, out=out4)

        def nn_fwd(ref=ref, x=x):
            with torch.no_grad():
                ref(x)

        def ours_fwd(ours=ours, x=x):
            with torch.no_grad():
                ours(x)

        fns = {"mm": mm, "bmm": bmm, "nn": nn_fwd, "ours": ours_fwd}
        times = {k: [] for k in fns}
        for _ in range(args.rounds):
            for k, fn in fns.items():
                times[k].append(per_call(fn, args.reps) * 1e3)
        m = {k: statistics.median(v) for k, v in times.items()}
        print(f"| ({B}, {T}, {C}, {H}) | {m['mm']:.2f} | {m['bmm']:.2f} | {m['bmm'] / m['mm']:.2f} | {m['nn']:.2f} | "
              f"{m['ours']:.2f} | {m['nn'] / m['ours']:.2f}x | {m['nn'] / m['bmm']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()

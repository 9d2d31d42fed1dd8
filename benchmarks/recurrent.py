"""Speed of embdrop.LSTM/GRU paths against torch's fused nn.LSTM/nn.GRU without dropout.

Training: one step = forward + backward + optimizer step on a (B, T, C) batch. Inference: a forward under
torch.no_grad, in eval mode (dropout off, zoneout's expectation) and in training mode (what MC dropout runs), at
the training shapes and for one sequence (B = 1, T = 200). For each shape, every variant and the baseline are
measured in the same process, interleaved round by round after a warm-up; the printed figure is the median over
rounds of (baseline time / variant time): 1.0x means as fast as nn.LSTM without dropout, above 1 faster. The
order of the variants is shuffled every round. "all rates 0" runs the very computation of the baseline (torch's
fused layer): its distance from 1.0x is the noise of the table. With --input-grad the input needs a gradient too,
as a layer's input does after an embedding or another layer (the input's gradient is then part of every step).
With --dense-projection a column "... dense projection" runs the first variant with the kernel's masked input
product turned off (the dense product of the masked copies, the same numbers): the two side by side in one process.
Run: python benchmarks/recurrent.py [--rounds N] [--shapes 32,200,64,100 ...] [--inference | --input-grad]
[--dense-projection]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from torch import nn

import embdrop
import embdrop.kernels.build

SHAPES = [(32, 200, 64, 100), (64, 35, 200, 200), (20, 35, 650, 650), (128, 50, 300, 256)]
VARIANTS = {
    "dropout=recurrent_dropout=0.5": dict(dropout=0.5, recurrent_dropout=0.5),
    "dropout=0.5 only": dict(dropout=0.5),
    "weight_dropout=0.5": dict(weight_dropout=0.5),
    "naive dropout=0.5": dict(dropout=0.5, variational=False),
    "zoneout=0.1": dict(zoneout=0.1),
    "all rates 0": dict(),
}
# inference: (variant, the layer's mode) against the baseline's eval-mode forward
INFERENCE = {
    "recurrent_dropout=0.5, eval": ("dropout=recurrent_dropout=0.5", False),
    "zoneout=0.1, eval": ("zoneout=0.1", False),
    "recurrent_dropout=0.5, train (MC)": ("dropout=recurrent_dropout=0.5", True),
    "all rates 0, eval": ("all rates 0", False),
}


def make_step(model, x, masked_product: bool = True):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    switch = embdrop.kernels.build.extension().set_masked_products if embdrop.kernels.build.available() else None

    def step():
        if switch is not None:
            switch(masked_product)
        opt.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = model(x)
        out.square().mean().backward()
        opt.step()

    return step


def make_forward(model, x, training: bool):
    def forward():
        model.train(training)  # two columns may share a layer in different modes
        with torch.no_grad():
            model(x)

    return forward


def bench(kind: str, shape, rounds: int, reps: int, inference: bool = False, input_grad: bool = False, dense=False):
    B, T, C, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, C, requires_grad=input_grad and not inference)
    base = getattr(nn, kind)(C, H, batch_first=True)
    layers = {}
    for name, kw in VARIANTS.items():
        layers[name] = getattr(embdrop, kind)(C, H, **kw)
        layers[name].load_state_dict(base.state_dict())
    if inference:
        steps = {"baseline": make_forward(base, x, False)}
        steps |= {name: make_forward(layers[v], x, training) for name, (v, training) in INFERENCE.items()}
    else:
        steps = {"baseline": make_step(base, x)} | {name: make_step(m.train(), x) for name, m in layers.items()}
        if dense:
            first = next(iter(VARIANTS))
            steps[first + ", dense projection"] = make_step(layers[first], x, masked_product=False)
    for s in steps.values():  # warm-up (and the kernel build, on a first run)
        s()
        s()
    times = {k: [] for k in steps}
    order = random.Random(0)
    for _ in range(rounds):
        names = list(steps)
        order.shuffle(names)  # a new order each round: no variant always runs right after the same one
        for k in names:
            s = steps[k]
            t0 = time.perf_counter()
            for _ in range(reps):
                s()
            times[k].append((time.perf_counter() - t0) / reps)
    ratios = {}
    for k in steps.keys() - {"baseline"}:
        ratios[k] = statistics.median(b / v for b, v in zip(times["baseline"], times[k], strict=True))
    ratios["baseline ms"] = statistics.median(times["baseline"]) * 1e3
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", default=["LSTM", "GRU"])
    ap.add_argument("--shapes", nargs="+", default=None, help="B,T,C,H")
    ap.add_argument("--inference", action="store_true", help="forwards under no_grad, also at B = 1, T = 200")
    ap.add_argument("--input-grad", action="store_true", help="training steps whose input needs a gradient too")
    ap.add_argument("--dense-projection", action="store_true", help="also the first variant without the masked product")
    args = ap.parse_args()
    if args.inference and args.input_grad:
        ap.error("--input-grad is for training steps; --inference runs without gradients")
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else SHAPES
    if args.inference and not args.shapes:
        shapes = shapes + [(1, 200, C, H) for C, H in sorted({(s[2], s[3]) for s in SHAPES})]
    columns = list(INFERENCE if args.inference else VARIANTS)
    if args.dense_projection and not args.inference:
        columns.insert(1, columns[0] + ", dense projection")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, kernel available: "
        f"{embdrop.kernels.build.available()}; ratio = nn.{{LSTM,GRU}} without dropout time / variant time"
        + ("; the input needs a gradient" if args.input_grad else "")
    )
    header = ["kind", "B,T,C,H", "baseline ms", *columns]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for kind in args.kinds:
        for shape in shapes:
            r = bench(kind, shape, args.rounds, args.reps, args.inference, args.input_grad, args.dense_projection)
            cells = [kind, ",".join(map(str, shape)), f"{r['baseline ms']:.1f}"] + [f"{r[k]:.2f}x" for k in columns]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

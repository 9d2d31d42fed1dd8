"""Where embdrop's LSTM training step loses to ``nn.LSTM`` on a CPU: the forward and the backward apart, then the
forward's parts.

Part 1, per shape, interleaved rounds, medians: the forward (training mode, gradients on, with its saved tensors)
and the backward of ``embdrop.LSTM(dropout=0.5, recurrent_dropout=0.5)`` and of ``nn.LSTM`` without dropout (oneDNN),
each timed on its own; the ratios are nn.LSTM's time over ours (1.0x: as fast).
Part 2, per shape, the forward's pieces timed alone (medians of 7 rounds): the masks' draw, the input projection
(four masked copies of x and one batched product, ``functional.recurrent._project``), the C++ recurrence saving what
the backward needs and without saving (inference), and the T batched products (4, B, H) x (4, H, H) alone.
Run: python benchmarks/recurrent_split.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import embdrop
from embdrop.functional import recurrent as dispatch
from embdrop.kernels import recurrence

SHAPES = [(32, 200, 64, 100), (64, 35, 200, 200), (20, 35, 650, 650), (128, 50, 300, 256)]


def split(shape, rounds: int) -> dict[str, float]:
    B, T, C, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, C)
    models = {
        "ours": embdrop.LSTM(C, H, dropout=0.5, recurrent_dropout=0.5),
        "nn.LSTM": nn.LSTM(C, H, batch_first=True),
    }
    times: dict[str, list[float]] = {f"{k} {p}": [] for k in models for p in ("forward", "backward")}
    for m in models.values():
        for _ in range(3):
            m(x)[0].square().mean().backward()
    for _ in range(rounds):
        for name, m in models.items():
            fw = bw = 0.0
            for _ in range(3):
                m.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                loss = m(x)[0].square().mean()
                t1 = time.perf_counter()
                loss.backward()
                fw, bw = fw + t1 - t0, bw + time.perf_counter() - t1
            times[f"{name} forward"].append(fw / 3 * 1e3)
            times[f"{name} backward"].append(bw / 3 * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def _timed(fn, n: int = 10) -> float:
    for _ in range(3):
        fn()
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        ts.append((time.perf_counter() - t0) / n * 1e3)
    return statistics.median(ts)


def parts(shape) -> dict[str, float]:
    B, T, C, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, C)
    layer = embdrop.LSTM(C, H, dropout=0.5, recurrent_dropout=0.5)
    masks = layer.sample_masks(x, generator=torch.Generator().manual_seed(0))
    w_ih, w_hh, b_ih, b_hh = (w.detach() for w in layer._weights(0, 0))
    m_in, rm = masks.input[0][0], masks.recurrent[0][0] * 2.0
    xw = dispatch._project(x, m_in, w_ih, b_ih + b_hh, 4, 0.5, True)
    h0, c0 = torch.zeros(B, H), torch.zeros(B, H)
    xw_grad, w_grad = xw.clone().requires_grad_(), w_hh.clone().requires_grad_()
    wt = w_hh.view(4, H, H).transpose(1, 2).contiguous()
    hm = torch.randn(4, B, H)
    return {
        "forward": _timed(lambda: layer(x)),
        "masks' draw": _timed(lambda: layer.sample_masks(x)),
        "input projection": _timed(lambda: dispatch._project(x, m_in, w_ih, b_ih + b_hh, 4, 0.5, True)),
        "recurrence, saving": _timed(lambda: recurrence.lstm_recurrence(xw_grad, w_grad, rm, h0, c0)),
        "recurrence, inference": _timed(lambda: recurrence.lstm_recurrence(xw, w_hh, rm, h0, c0)),
        "T products alone": _timed(lambda: [torch.bmm(hm, wt) for _ in range(T)], n=3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms")
    print("| B, T, C, H | ours forward | nn.LSTM forward | forward ratio | ours backward | nn.LSTM backward | "
          "backward ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        t = split(shape, args.rounds)
        fw, bw = t["nn.LSTM forward"] / t["ours forward"], t["nn.LSTM backward"] / t["ours backward"]
        print(f"| {', '.join(map(str, shape))} | {t['ours forward']:.2f} | {t['nn.LSTM forward']:.2f} | {fw:.2f}x | "
              f"{t['ours backward']:.2f} | {t['nn.LSTM backward']:.2f} | {bw:.2f}x |", flush=True)  # fmt: skip
    print()
    names = list(parts(SHAPES[0]))
    print("| B, T, C, H | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for shape in SHAPES:
        p = parts(shape)
        print(f"| {', '.join(map(str, shape))} | " + " | ".join(f"{p[k]:.2f}" for k in names) + " |", flush=True)


if __name__ == "__main__":
    main()

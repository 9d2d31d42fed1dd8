"""Latency of an exported model (ONNX Runtime) against the torch model it came from, on one CPU thread.

The models are the recipes' own, built from their presets with random weights (latency does not depend on what the
weights learned): ``reviews-lstm`` (Embedding -> Dropout -> LSTM(dropout, recurrent_dropout) -> Dense, maxlen 200)
and ``reviews-cnn-lstm``, in eval mode, as ``embdrop export`` writes them. For each batch size, the torch model under
``torch.inference_mode`` and the ONNX Runtime session (one intra-op thread each) run in the same process,
interleaved round by round after a warm-up; the figure is the median over rounds of torch time / ONNX Runtime
time (above 1.0x the exported model is faster). The outputs are compared on the same inputs.
Run: python benchmarks/export.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from embdrop import recipes
from embdrop.recipes.deploy import _Classes


def model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = recipes.resolve(name)
    net = recipes.recipe(name).build(config, SimpleNamespace(vocab=range(config.data.max_tokens), outputs=1))
    return _Classes(net).eval()


def onnx_session(net: torch.nn.Module, example: torch.Tensor, folder: Path):
    import onnxruntime

    dims = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim.AUTO}  # as embdrop export: any batch, length
    program = torch.export.export(net, (example,), dynamic_shapes=(dims,))
    path = folder / "model.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(program, (), str(path), input_names=["ids"], output_names=["probabilities"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed(fn, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batches", default="1,32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; median of {args.rounds} interleaved rounds")
    print("| model | batch | torch ms | ONNX Runtime ms | torch / ONNX Runtime | largest difference |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("reviews-lstm", "reviews-cnn-lstm"):
            net = model(name)
            maxlen = recipes.resolve(name).data.maxlen
            session = onnx_session(net, torch.randint(1, 10_000, (2, maxlen)), Path(tmp))
            for batch in (int(b) for b in args.batches.split(",")):
                ids = torch.randint(1, 10_000, (batch, maxlen))
                feed = {"ids": ids.numpy()}
                with torch.inference_mode():
                    want = net(ids)
                got = torch.from_numpy(session.run(None, feed)[0])
                diff = float((got - want).abs().max())
                reps = 20 if batch == 1 else 3

                def run_torch(ids=ids, net=net):
                    with torch.inference_mode():
                        net(ids)

                def run_onnx(feed=feed, session=session):
                    session.run(None, feed)

                for _ in range(2):  # warm-up
                    run_torch(), run_onnx()
                ratios, t_torch, t_onnx = [], [], []
                for _ in range(args.rounds):
                    a, b = timed(run_torch, reps), timed(run_onnx, reps)
                    t_torch.append(a)
                    t_onnx.append(b)
                    ratios.append(a / b)
                ms = statistics.median(t_torch) * 1e3, statistics.median(t_onnx) * 1e3
                ratio = statistics.median(ratios)
                print(f"| {name} | {batch} | {ms[0]:.2f} | {ms[1]:.2f} | {ratio:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()

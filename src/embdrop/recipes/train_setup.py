"""What a training run sets up before its first step, each checked: the optimizer, autocast, the device, the
threads, the learning rate of an epoch; and the small types the loop reports with."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from embdrop import _checks
from embdrop.recipes.config import Config

OPTIMIZERS = ("adam", "rmsprop", "sgd")


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    t = config.train
    _checks.choice("train.optimizer", t.optimizer, OPTIMIZERS)
    wd = t.weight_decay
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=wd)
    if t.optimizer == "rmsprop":  # Keras' RMSprop: rho 0.9, epsilon 1e-7
        return RMSprop(params, lr=t.lr, alpha=0.9, eps=1e-7, weight_decay=wd)
    return torch.optim.SGD(params, lr=t.lr, weight_decay=wd)


class RMSprop(torch.optim.RMSprop):
    """``torch.optim.RMSprop``, the same update to the bit, without torch's slow square root of small numbers.

    On CPU torch's ``sqrt`` takes 6x longer on zeros and 30x on denormals than on other floats (AVX-512, torch 2.13:
    0.81 ms against 0.14 ms for a (10,000, 64) running average two thirds zero), and an embedding's running average
    is mostly zeros (words not seen yet) and decaying values. Entries below ``c = (eps * 2^-26)^2`` are raised to
    ``c`` first: their square roots stay below half a unit in the last place of ``eps``, so ``sqrt + eps`` rounds to
    ``eps`` either way and the update is the same. Float32 CPU parameters, no momentum, not centered; anything else
    is torch's own step.
    """

    def _plain(self) -> bool:
        return not torch.compiler.is_compiling() and all(
            g["momentum"] == 0 and not g["centered"] and not g["maximize"] and not g["differentiable"]
            and not g["capturable"] and not g["foreach"] and g["eps"] >= 1e-11
            and all(p.device.type == "cpu" and p.dtype == torch.float32 and not p.is_sparse for p in g["params"])
            for g in self.param_groups
        )  # fmt: skip

    @torch.no_grad()
    def step(self, closure=None):
        if not self._plain():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, square_avgs, grad_avgs, momenta, steps = [], [], [], [], [], []
            self._init_group(group, params, grads, square_avgs, momenta, grad_avgs, steps)
            lr, alpha, eps, wd = float(group["lr"]), group["alpha"], group["eps"], group["weight_decay"]
            floor = (eps * 2.0**-26) ** 2
            for param, grad, square_avg, step in zip(params, grads, square_avgs, steps, strict=True):
                step += 1  # the order of torch's single-tensor step, which is what runs on CPU
                if wd != 0:
                    grad = grad.add(param, alpha=wd)
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                avg = square_avg.clamp_min(floor).sqrt_().add_(eps)
                param.addcdiv_(grad, avg, value=-lr)
        return loss


PRECISIONS = ("float32", "bfloat16")


def autocast(config: Config, device: str = "cpu"):
    """The context the training step runs in: ``torch.autocast`` to bfloat16 when ``train.precision`` says so."""
    p = _checks.choice("train.precision", config.train.precision, PRECISIONS)
    return torch.autocast(device, dtype=torch.bfloat16, enabled=p == "bfloat16")


def resolve_device(name: object, world: int = 1) -> torch.device:
    """``train.device`` as a ``torch.device``: "cpu", or "cuda" / "cuda:N" where that GPU exists."""
    expected = "'cpu', 'cuda' or 'cuda:N' with an available GPU"
    try:
        device = torch.device(name) if isinstance(name, str) else None
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise _checks.invalid("train.device", expected, repr(name))
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise _checks.invalid("train.device", f"{expected} (this machine has {count})", repr(name))
        if world > 1:
            raise _checks.invalid("train.device", "'cpu' under torchrun (the processes share gloo on CPU)", repr(name))
    return device


def _number(name: str, value: object, expected: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise _checks.invalid(name, expected, repr(value))


def check_train(t, world: int = 1) -> torch.device:
    """Validate every field of ``config.train`` before any data are read; returns the device."""
    _checks.integer("train.epochs", t.epochs, low=1)
    _checks.integer("train.batch_size", t.batch_size, low=1)
    _checks.choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _number("train.lr", t.lr, "a finite float > 0", lambda v: v > 0)
    if t.clip is not None:
        _number("train.clip", t.clip, "a finite float > 0, or None (no clipping)", lambda v: v > 0)
    if t.patience is not None:
        _checks.integer("train.patience", t.patience, low=1)
    _number("train.lr_decay", t.lr_decay, "a finite float > 0", lambda v: v > 0)
    _checks.integer("train.decay_after", t.decay_after, low=0)
    _number("train.weight_decay", t.weight_decay, "a finite float >= 0", lambda v: v >= 0)
    _checks.mc_samples("train.mc", t.mc)
    _checks.seed("train.seed", t.seed)
    _checks.choice("train.precision", t.precision, PRECISIONS)
    _number("train.log_every", t.log_every, "a number of seconds >= 0 (0: no progress lines)", lambda v: v >= 0)
    if t.threads is not None:
        most = max(4 * (os.cpu_count() or 1), 64)  # each thread is created: a typo of 100000 is not a request
        _checks.integer("train.threads", t.threads, low=1, high=most + 1)
    return resolve_device(t.device, world)


def idle_cores(seconds: float = 0.2) -> int:
    """The cores not kept busy by other processes, from two readings of /proc/stat (Linux); elsewhere all cores.

    This process's own CPU time in the interval (its threads may still spin after the last torch call) is not
    counted as busy.
    """
    cores = os.cpu_count() or 1

    def read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)  # idle + iowait, total (in ticks)

    def own() -> int:
        try:
            with open("/proc/self/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime of every thread, in ticks
        except (OSError, ValueError, IndexError):
            return 0

    a, mine_a = read(), own()
    time.sleep(seconds)
    b, mine_b = read(), own()
    if a is None or b is None or b[1] <= a[1]:
        return cores
    total = b[1] - a[1]
    busy_others = max(0, total - (b[0] - a[0]) - (mine_b - mine_a))
    busy = cores * busy_others / total  # cores' worth of work by other processes
    return max(1, min(cores, cores - round(busy)))


def resolve_threads(threads: int | None, log=print) -> int:
    """``train.threads``, or the idle cores when it is None; sets torch's intra-op threads and returns the count."""
    if threads is None:
        threads = idle_cores()
        cores = os.cpu_count() or 1
        if threads < cores:
            log(f"threads: {threads} ({cores - threads} of {cores} cores busy with other work when the run started; "
                "--set train.threads=N to choose)")  # fmt: skip
    torch.set_num_threads(threads)
    return threads


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or exploded: the run stops, keeping the last complete epoch's checkpoint."""


# A training loss this many times the run's first one (or 1, whichever is larger) has diverged, even while finite:
# no run that learns comes within orders of magnitude of it, and one that got there only grows (Adam with
# train.lr=1e30 trains to 7e30 without a NaN).
EXPLODED = 1e6


def epoch_lr(config: Config, epoch: int) -> float:
    """The schedule: ``lr * lr_decay ** max(0, epoch - decay_after)`` (a function of the epoch, so resume-safe)."""
    t = config.train
    return t.lr * t.lr_decay ** max(0, epoch - t.decay_after)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class Summary:
    test: dict
    best_epoch: int
    seconds_per_epoch: float
    parameters: int
    run: Path

    def __str__(self) -> str:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in self.test.items())
        return (
            f"test: {metrics} (weights of epoch {self.best_epoch}, the best on validation)\n"
            f"time per epoch: {self.seconds_per_epoch:.1f} s, parameters: {self.parameters:,}, run: {self.run}"
        )

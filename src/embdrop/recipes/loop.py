"""The one training loop: epochs with a progress bar, clipping, evaluation, early stopping, checkpoints, resume.

A run directory holds ``config.json`` (the resolved config), ``vocab.json``, ``metrics.jsonl`` (one line per
epoch), ``curve.png`` (the learning curve), ``checkpoint.safetensors`` (the commit of the last complete epoch:
model, optimizer, RNG state, best weights and metrics; see :mod:`embdrop.recipes.checkpoint`), ``checkpoint.json``
(its epoch and best epoch, for people), ``best.safetensors`` (the weights of the best validation epoch, which the
test metric is computed with) and ``summary.json``. ``resume`` continues from the last commit to the same final
numbers as an uninterrupted run: the shuffling of epoch k is seeded by (seed, k) and the global RNG state is saved.
Progress: a bar on a terminal; written to a file (``embdrop train ... 2> log``), a plain line every
``train.log_every`` seconds instead, and one line per epoch in both cases.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from embdrop import _checks, _extras
from embdrop._io import write_json
from embdrop.functional import backend
from embdrop.recipes import checkpoint, distributed
from embdrop.recipes import inputs as input_files
from embdrop.recipes.checkpoint import weights_of  # noqa: F401  (re-exported: the weights as safetensors takes them)
from embdrop.recipes.config import Config, config_document
from embdrop.recipes.task import Task
from embdrop.viz import plots

OPTIMIZERS = ("adam", "rmsprop", "sgd")


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    t = config.train
    _checks.choice("train.optimizer", t.optimizer, OPTIMIZERS)
    wd = t.weight_decay
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=wd)
    if t.optimizer == "rmsprop":  # Keras' RMSprop: rho 0.9, epsilon 1e-7
        return torch.optim.RMSprop(params, lr=t.lr, alpha=0.9, eps=1e-7, weight_decay=wd)
    return torch.optim.SGD(params, lr=t.lr, weight_decay=wd)


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


def fit(
    config: Config,
    task: Task,
    model: nn.Module,
    run: Path,
    *,
    resume: bool = False,
    console=None,
    resumes: list[dict] | None = None,
    inputs: dict | None = None,
) -> Summary | None:
    """Train ``model`` on ``task`` as ``config.train`` says, writing the run directory ``run``.

    Each epoch (:func:`train_epoch`, then :func:`end_epoch`: validation, best weights, the commit) ends with one
    atomic commit (see :mod:`embdrop.recipes.checkpoint`); ``resume`` continues from the last one, and ``resumes``
    (the fields a resume changed) is added to its record; ``inputs`` (the fingerprints of the input files, see
    :mod:`embdrop.recipes.inputs`) is written beside the config of a new run. A NaN or infinite loss stops the run with
    :class:`TrainingDiverged`, the last commit kept. :func:`final_test` evaluates the best epoch's weights.

    Under ``torchrun --nproc_per_node N`` (a gloo process group, see :mod:`embdrop.recipes.distributed`) the model
    is wrapped in DistributedDataParallel: each global batch of ``train.batch_size`` is split by rows across the N
    processes, so the update is that of one process with the same batch; rank 0 writes and returns the summary,
    the other ranks return None.
    """
    _extras.need("rich", "safetensors", "matplotlib")
    from rich.console import Console

    console = console or Console(stderr=True)
    t = config.train
    world, rank = distributed.world_rank()
    device = check_train(t, world)
    if t.threads is None and world > 1:  # the ranks share the machine's cores
        resolve_threads(max(1, (os.cpu_count() or 1) // world))
    else:
        resolve_threads(t.threads, log=lambda line: console.print(line, soft_wrap=True) if rank == 0 else None)
    if device.type != "cpu":  # the data are small next to the model's activations: all of it moves once
        model.to(device)
        task.to(device)
    writer = rank == 0  # under torchrun only rank 0 writes the run directory and prints
    if not writer:
        console = Console(file=io.StringIO())
    net = model
    if world > 1:  # DDP: every rank takes rows rank::world of each global batch; gradients are averaged
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    opt = make_optimizer(config, model.parameters())
    if t.precision == "bfloat16" and device.type == "cpu" and not backend.onednn_supports(torch.bfloat16):
        console.print(
            "warning: train.precision=bfloat16, but oneDNN has no bfloat16 on this CPU (it needs AVX-512; AMX or "
            "AVX512-BF16 make it fast): the products are emulated, many times slower than float32",
            soft_wrap=True,
        )
    state = checkpoint.State(best={"epoch": 0, "value": -math.inf if task.higher_is_better else math.inf})
    if resume:
        state = checkpoint.load(run, model, opt)
        state.resumes = state.resumes + list(resumes or [])
        if writer:  # repair what a death after the last commit may have left behind
            checkpoint.remove_partial_writes(run)
            checkpoint.write_derived(run, state)
            # the config this process runs: the resume's changes, and the defaults of fields newer than the run
            write_json(run / "config.json", config_document(config), indent=1)
        changed = "; ".join(
            [f"{k}: {a} -> {b}" for r in resumes or [] for k, (a, b) in r.get("changed", {}).items()]
            + [v for r in resumes or [] for v in r.get("inputs_changed", {}).values()]
        )
        console.print(f"resuming {run} after epoch {state.epoch}" + (f" ({changed})" if changed else ""),
                      soft_wrap=True)  # fmt: skip
    elif writer:  # config.json first: a run killed after any of these writes is one --resume restarts
        write_json(run / "config.json", config_document(config), indent=1)
        task.save(run)
        if inputs is not None:
            input_files.save(run, inputs)
    for epoch in range(state.epoch + 1, t.epochs + 1):
        sums, seconds = train_epoch(config, task, net, model, opt, epoch, state, console)
        stop = end_epoch(config, task, model, opt, state, epoch, sums, seconds, run if writer else None, console)
        if stop:
            break
    if writer and state.epoch == t.epochs and state.best["epoch"] == t.epochs and t.epochs > 1:
        console.print(still_learning(config, task), soft_wrap=True)
    if world > 1:
        distributed.barrier()  # rank 0 has written best.safetensors
        if not writer:
            return None
    return final_test(config, task, model, state, run, console)


def still_learning(config: Config, task: Task) -> str:
    """The hint for a run whose best epoch is its last: it may stop before it has learned what it can (a small
    table at the default batch size takes few steps)."""
    t = config.train
    steps = t.epochs * task.num_batches("train", t.batch_size)
    return (f"hint: the best validation {task.metric} came in the last epoch ({t.epochs}; {steps:,} training steps "
            f"of {t.batch_size} examples): the model may still be learning. More epochs (--set "
            f"train.epochs={2 * t.epochs}) or a smaller batch (--set train.batch_size={max(1, t.batch_size // 4)}) "
            "may do better.")  # fmt: skip


def is_better(value: float, loss: float, best: dict, higher_is_better: bool) -> bool:
    """Whether an epoch's validation ``value`` (and ``loss``) beats the best so far: a better metric, or the same
    metric with a lower validation loss (accuracy on a few hundred examples ties often, while the loss says which
    weights are better). A best recorded before the loss was kept (no ``loss``) wins its ties, as it did then."""
    if value != best["value"]:
        return value > best["value"] if higher_is_better else value < best["value"]
    return loss < best.get("loss", -math.inf)


def train_epoch(
    config: Config,
    task: Task,
    net: nn.Module,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    epoch: int,
    state: checkpoint.State,
    console,
) -> tuple[dict, float]:
    """One pass over the training split: ``({"loss": mean, metric: mean}, seconds)``, the means over the ranks.

    ``net`` is ``model`` or its DDP wrapper; the order of the batches depends on (seed, epoch) only, so a resumed
    run sees the batches an uninterrupted one would. A step whose loss is not finite, or more than
    :data:`EXPLODED` times the run's first loss (``state.first_loss``, kept in the commit), stops the run with
    :class:`TrainingDiverged`.
    """
    committed = state.epoch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t = config.train
    world, rank = distributed.world_rank()
    metric = task.metric
    plain = t.log_every > 0 and not console.is_terminal  # a log file: a line every log_every seconds, no bar
    model.train()
    for group in opt.param_groups:
        group["lr"] = epoch_lr(config, epoch)
    task.start_epoch(opt)
    g = torch.Generator().manual_seed(t.seed * 100_003 + epoch)  # the order of epoch k depends on (seed, k)
    if world > 1:  # each rank its own dropout masks, reproducible from (seed, epoch, rank)
        torch.manual_seed((t.seed * 100_003 + epoch) * 1_009 + rank)
    step_context = autocast(config, next(model.parameters()).device.type)
    t0 = time.perf_counter()
    built_before = backend.build_seconds()
    sums, n = {"loss": 0.0, metric: 0.0}, 0
    columns = (TextColumn(f"epoch {epoch}/{t.epochs}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(
        *columns, TextColumn("{task.fields[info]}"), console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        total = task.num_batches("train", t.batch_size)
        job = bar.add_task("train", total=total, info="")
        last_line = t0
        for batch in task.batches("train", t.batch_size, generator=g):
            if world > 1:
                batch = tuple(x[rank::world] for x in batch)
            with step_context:
                loss, extra = task.loss(net, batch)
            value = loss.item()
            if not math.isfinite(value):
                _diverged(config, epoch, n + 1, total, f"training loss {value} is not finite", committed)
            if state.first_loss is None:
                state.first_loss = value
            if abs(value) > EXPLODED * max(abs(state.first_loss), 1.0):
                first = state.first_loss
                what = f"training loss {value:.4g} is more than {EXPLODED:.0e} times the first step's ({first:.4g})"
                _diverged(config, epoch, n + 1, total, what, committed)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            opt.step()
            sums["loss"] += value
            sums[metric] += extra[metric]
            n += 1
            info = f"loss {sums['loss'] / n:.4f} {metric} {sums[metric] / n:.4f}"
            bar.update(job, advance=1, info=info)
            if plain and n < total and time.perf_counter() - last_line >= t.log_every:
                last_line = time.perf_counter()
                console.print(f"epoch {epoch}/{t.epochs}: {n}/{total} batches, {info}, "
                              f"{last_line - t0:.0f} s", soft_wrap=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    build = backend.build_seconds() - built_before  # the one-time kernel build: not a cost of the epoch
    if build > 0:
        seconds = max(seconds - build, 0.0)
        console.print(f"kernel: the fused CPU kernel was built in {build:.1f} s (once per CPU and version, then "
                      f"cached), not counted in epoch {epoch}'s time", soft_wrap=True)  # fmt: skip
    loss_mean, metric_mean = distributed.mean_over_ranks(sums["loss"] / n, sums[metric] / n)
    return {"loss": loss_mean, metric: metric_mean, "batches": n}, seconds


def end_epoch(
    config: Config,
    task: Task,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    state: checkpoint.State,
    epoch: int,
    sums: dict,
    seconds: float,
    run: Path | None,
    console,
) -> bool:
    """Validate, keep the best weights, commit the epoch to ``run`` (None: a rank that does not write) and print
    its line; returns whether early stopping says to stop."""
    t, metric = config.train, task.metric
    valid = task.evaluate(model, "valid")
    if not all(math.isfinite(v) for v in valid.values()):
        total = task.num_batches("train", t.batch_size)
        _diverged(config, epoch, sums["batches"], total, f"validation {valid} is not finite", state.epoch)
    row = {
        "epoch": epoch,
        "train_loss": sums["loss"],
        f"train_{metric}": task.train_metric(sums["loss"], sums[metric]),
        "lr": epoch_lr(config, epoch),
    }
    row.update({f"valid_{k}": v for k, v in valid.items()})
    row["seconds"] = seconds
    value = valid[metric]
    better = is_better(value, valid["loss"], state.best, task.higher_is_better)
    bad_epochs = 0 if not state.history else state.history[-1].get("bad_epochs", 0)
    if better:
        state.best = {"epoch": epoch, "value": value, "loss": valid["loss"]}
        state.best_weights = checkpoint.snapshot(model)
        bad_epochs = 0
    else:
        bad_epochs += 1
    row["bad_epochs"] = bad_epochs
    state.history.append(row)
    state.epoch = epoch
    if run is None:
        return False
    checkpoint.save(run, model, opt, state)  # the commit: this epoch's weights, optimizer, RNG and metrics
    plots.learning_curve(run / "curve.png", state.history, metric, run.name)
    train_value = row[f"train_{metric}"]  # NaN where the metric needs the whole split (AUC): not shown
    shown = "" if math.isnan(train_value) else f" {metric} {train_value:.4f}"
    console.print(
        f"epoch {epoch}/{t.epochs}: train loss {row['train_loss']:.4f}{shown}, "
        f"valid loss {valid['loss']:.4f} {metric} {value:.4f}, {seconds:.1f} s" + (" *" if better else ""),
        soft_wrap=True,
    )
    if t.patience is not None and bad_epochs >= t.patience:
        console.print(f"early stop: no better validation {metric} for {t.patience} epochs")
        return True
    return False


def final_test(
    config: Config, task: Task, model: nn.Module, state: checkpoint.State, run: Path, console=None
) -> Summary:
    """The test metrics with the best epoch's weights (and the MC-dropout ones with ``train.mc``), written to
    ``summary.json``."""
    t = config.train
    if state.best_weights is None:
        raise _checks.invalid("train.epochs", f"more epochs than the {state.epoch} the run has done (it has no "
                              "best epoch yet)", t.epochs)  # fmt: skip
    model.load_state_dict(state.best_weights)
    say = (lambda line: console.print(line, soft_wrap=True)) if console is not None else (lambda line: None)
    say(f"test: evaluating the weights of epoch {state.best['epoch']} on the test split ...")
    test = task.evaluate(model, "test")
    if t.mc > 0:
        say(f"test: MC dropout, {t.mc:,} passes over the test split ...")
        torch.manual_seed(t.seed)
        test.update(task.evaluate(model, "test", mc=t.mc))
    wrong = {k: v for k, v in test.items() if not math.isfinite(v)}
    if wrong:  # never reported as a result
        raise TrainingDiverged(
            f"test metrics {wrong} are not finite with the weights of epoch {state.best['epoch']}: no result is "
            f"reported (the run's checkpoint is kept; check the test file for values the training data lack)"
        )
    history = state.history
    per_epoch = sum(h["seconds"] for h in history) / max(len(history), 1)
    summary = Summary(test, state.best["epoch"], per_epoch, parameter_count(model), run)
    write_json(run / "summary.json", {"test": test, "best_epoch": state.best["epoch"], "seconds_per_epoch": per_epoch,
                                      "parameters": summary.parameters, "resumes": state.resumes})  # fmt: skip
    return summary


def _diverged(config: Config, epoch: int, step: int, total: int, what: str, committed: int) -> None:
    kept = f"the checkpoint of epoch {committed} is kept" if committed else "no epoch had completed"
    raise TrainingDiverged(
        f"{what} at epoch {epoch}, step {step} of {total}: training stopped ({kept}). "
        f"Try a lower train.lr (now {config.train.lr}) or train.clip (now {config.train.clip})."
    )

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
from embdrop.recipes.train_setup import (
    EXPLODED,
    Summary,
    TrainingDiverged,
    autocast,
    check_train,
    epoch_lr,
    make_optimizer,
    parameter_count,
    resolve_threads,
)
from embdrop.viz import plots


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
                _stop_diverged(config, epoch, n + 1, total, f"training loss {value} is not finite", committed)
            if state.first_loss is None:
                state.first_loss = value
            if abs(value) > EXPLODED * max(abs(state.first_loss), 1.0):
                first = state.first_loss
                what = f"training loss {value:.4g} is more than {EXPLODED:.0e} times the first step's ({first:.4g})"
                _stop_diverged(config, epoch, n + 1, total, what, committed)
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
        _stop_diverged(config, epoch, sums["batches"], total, f"validation {valid} is not finite", state.epoch)
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


def _stop_diverged(config: Config, epoch: int, step: int, total: int, what: str, committed: int) -> None:
    kept = f"the checkpoint of epoch {committed} is kept" if committed else "no epoch had completed"
    raise TrainingDiverged(
        f"{what} at epoch {epoch}, step {step} of {total}: training stopped ({kept}). "
        f"Try a lower train.lr (now {config.train.lr}) or train.clip (now {config.train.clip})."
    )

"""``embdrop compare RECIPE --vary field=v1,v2 [--seeds 5]``: a grid of runs, side by side, over several seeds.

``--cell "NAME:field=v;field=v"`` adds named cells that set several fields at once (the grid is then every
``--cell`` times every ``--vary`` combination). Every cell of the grid trains once per seed (``train.seed`` = 0,
1, ...), each run in its own directory ``OUT/<cell>/seed-<k>``; runs go to a pool of processes (one per core by
default, each with ``cores // jobs`` threads; spawned, so a script that calls :func:`compare` needs the usual
``if __name__ == "__main__":`` guard). Every cell's fields are checked before the first process starts. Then
``OUT`` gets:

- ``runs.csv``: one row per run, every test metric, the best epoch and the time per epoch (the raw numbers);
- ``table.md``: per cell the mean, the standard deviation and the 95% interval (Student's t over the seeds) of
  each test metric; the best cell of the recipe's metric is marked ``*`` only where its interval separates from
  every other cell's;
- ``compare.png``: the recipe's metric per cell, one dot per seed, the mean and its 95% interval.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import multiprocessing
import os
import shutil
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from embdrop import _checks, _extras
from embdrop._io import atomic_write
from embdrop.recipes.loop import check_train
from embdrop.viz import plots

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131) + (
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def interval(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, std, low, high): the sample mean, the sample standard deviation and the 95% t interval of the mean."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = statistics.stdev(values)
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def parse_cells(items: list[str], recipe: str) -> list[tuple[str, list[str]]]:
    """``["both:model.dropout=0.25;model.lstm_dropout=0.5"]`` -> ``[("both", ["model.dropout=0.25", ...])]``,
    each cell checked by resolving the recipe with it."""
    from embdrop import recipes

    out = []
    for item in items:
        name, sep, body = item.partition(":")
        sets = [x.strip() for x in body.split(";") if x.strip()]
        if not sep or not name.strip() or not sets or any("=" not in x for x in sets):
            raise _checks.invalid("--cell", "NAME:FIELD=VALUE;FIELD=VALUE...", item)
        recipes.resolve(recipe, sets)
        out.append((name.strip(), sets))
    if len({n for n, _ in out}) != len(out):
        raise _checks.invalid("--cell", "distinct cell names", ", ".join(n for n, _ in out))
    return out


def parse_vary(items: list[str], recipe: str) -> list[tuple[str, list[str]]]:
    """``["model.dropout=0,0.25", ...]`` -> ``[("model.dropout", ["0", "0.25"]), ...]``; each value checked by
    resolving the recipe with it, so a wrong field or value fails before anything runs."""
    from embdrop import recipes

    out = []
    for item in items:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not vals:
            raise _checks.invalid("--vary", "FIELD=V1,V2,... (at least one value)", item)
        for v in vals:
            recipes.resolve(recipe, [f"{name.strip()}={v}"])
        out.append((name.strip(), vals))
    return out


@dataclass
class Run:
    cell: str
    seed: int
    overrides: list[str]
    out: Path


def _train_one(recipe: str, overrides: list[str], out: str, threads: int) -> dict:
    from embdrop import recipes

    _extras.need("rich")
    from rich.console import Console

    # the grid's share of the cores, unless the user set train.threads (a later --set wins)
    summary = recipes.train(recipe, [f"train.threads={threads}", *overrides], out, console=Console(file=io.StringIO()))
    return {"test": summary.test, "best_epoch": summary.best_epoch, "seconds_per_epoch": summary.seconds_per_epoch}


def compare(
    recipe: str,
    vary: list[str],
    *,
    cells: list[str] = (),
    seeds: int = 5,
    overrides: list[str] = (),
    out: str | Path | None = None,
    jobs: int | None = None,
    log=print,
) -> Path:
    """Run the grid and write ``runs.csv``, ``table.md`` and ``compare.png`` into ``out``; returns ``out``."""
    from embdrop import recipes

    seeds = _checks.integer("--seeds", seeds, low=1)
    cores = os.cpu_count() or 1
    jobs = _checks.integer("--jobs", jobs if jobs is not None else cores, low=1)
    grid = parse_vary(list(vary), recipe)
    named = parse_cells(list(cells), recipe) or [("", [])]
    recipes.resolve(recipe, list(overrides))  # checks the --set items before anything runs
    out = Path(out) if out is not None else Path("runs") / f"compare-{recipe}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _checks.invalid("--out", "a new or empty directory", repr(str(out)))
    runs = []
    for (name, sets), combo in itertools.product(named, itertools.product(*[[(f, v) for v in vs] for f, vs in grid])):
        cell = ",".join([name] * bool(name) + [f"{f}={v}" for f, v in combo])
        folder = "_".join([name] * bool(name) + [f"{f.split('.')[-1]}-{v}" for f, v in combo]) or "default"
        for seed in range(seeds):
            items = [*overrides, *sets, *(f"{f}={v}" for f, v in combo), f"train.seed={seed}"]
            runs.append(Run(cell, seed, items, out / folder / f"seed-{seed}"))
    for r in runs[::seeds]:  # every cell's training fields, before any process starts
        check_train(recipes.resolve(recipe, r.overrides).train)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    jobs = min(jobs, len(runs))
    threads = max(1, cores // jobs)
    log(f"{len(runs)} runs ({len(runs) // seeds} cells x {seeds} seeds) on {jobs} processes x {threads} threads")
    results: dict[int, dict] = {}
    # spawned, not forked: a fork of a process whose torch thread pool has run deadlocks in the child
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_train_one, recipe, r.overrides, str(r.out), threads): i for i, r in enumerate(runs)}
        for done, fut in enumerate(as_completed(futures), 1):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except _checks.UsageError:  # a cell the recipe refuses: the grid is wrong, so none of it is kept
                pool.shutdown(wait=True, cancel_futures=True)
                if created:
                    shutil.rmtree(out, ignore_errors=True)
                raise
            r = runs[i]
            metric = base_metric(results[i]["test"])
            log(f"[{done}/{len(runs)}] {r.cell or 'default'} seed {r.seed}: {metric[0]} {metric[1]:.4f}")
    rows = [{"cell": r.cell or "default", "seed": r.seed, **results[i]["test"], "best_epoch": results[i]["best_epoch"],
             "seconds_per_epoch": results[i]["seconds_per_epoch"]} for i, r in enumerate(runs)]  # fmt: skip
    metric, higher = _recipe_metric(recipe, rows)
    _write_csv(out / "runs.csv", rows)
    table = summary_table(rows, metric, higher)
    atomic_write(out / "table.md", lambda tmp: Path(tmp).write_text(table, encoding="utf-8"))
    plots.compare_cells(out / "compare.png", rows, metric, f"{recipe}: test {metric}, {seeds} seeds")
    log(table)
    return out


def base_metric(test: dict) -> tuple[str, float]:
    for key in ("auc", "accuracy", "perplexity", "rmse"):  # the recipes' own metrics (flights: AUC first)
        if key in test:
            return key, test[key]
    key = next(iter(test))
    return key, test[key]


def _recipe_metric(recipe: str, rows: list[dict]) -> tuple[str, bool]:
    metric, _ = base_metric({k: v for k, v in rows[0].items() if k not in ("cell", "seed")})
    return metric, metric in ("accuracy", "auc")


def summary_table(rows: list[dict], metric: str, higher: bool) -> str:
    """Markdown: one line per cell, mean ± std and [95% interval] of every test metric; ``*`` on the best cell of
    ``metric`` when its interval does not overlap any other cell's."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    keys = [k for k in rows[0] if k not in ("cell", "seed", "best_epoch", "seconds_per_epoch")]
    stats = {c: {k: interval([r[k] for r in rows if r["cell"] == c]) for k in keys} for c in cells}
    means = {c: stats[c][metric][0] for c in cells}
    best = (max if higher else min)(cells, key=means.__getitem__)
    lo, hi = stats[best][metric][2], stats[best][metric][3]
    separated = len(cells) > 1 and all(
        (stats[c][metric][3] < lo) if higher else (stats[c][metric][2] > hi) for c in cells if c != best
    )
    n = len([r for r in rows if r["cell"] == cells[0]])
    lines = [f"| cell | {' | '.join(keys)} |", "|---" * (len(keys) + 1) + "|"]
    for c in cells:
        parts = []
        for k in keys:
            mean, std, low, high = stats[c][k]
            mark = " *" if (k == metric and c == best and separated) else ""
            parts.append(f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}]{mark}")
        lines.append(f"| {c} | {' | '.join(parts)} |")
    note = f"\nmean ± std [95% interval of the mean] over {n} seeds; * marks the best {metric} only where its "
    note += "interval separates from every other cell's" + ("" if separated else " (none does here)") + ".\n"
    return "\n".join(lines) + "\n" + note


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)

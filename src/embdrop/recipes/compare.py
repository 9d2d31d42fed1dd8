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

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from embdrop import _checks
from embdrop._io import atomic_write, read_json, write_json
from embdrop.recipes.compare_table import _recipe_metric, _write_csv, summary_table
from embdrop.recipes.train_setup import check_train
from embdrop.stats import base_metric
from embdrop.viz import plots


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
class PlannedRun:
    cell: str
    seed: int
    overrides: list[str]
    out: Path

    @property
    def log(self) -> Path:
        return self.out.parent / f"{self.out.name}.log"

    @property
    def result(self) -> Path:
        return self.out.parent / f"{self.out.name}.result.json"


FORMAT = "embdrop-compare-1"


def compare(
    recipe: str | None,
    vary: list[str] = (),
    *,
    cells: list[str] = (),
    seeds: int = 5,
    overrides: list[str] = (),
    out: str | Path | None = None,
    jobs: int | None = None,
    resume: str | Path | None = None,
    log=print,
) -> Path:
    """Run the grid and write ``runs.csv``, ``table.md`` and ``compare.png`` into ``out``; returns ``out``.

    The plan (every run's cell, seed and fields) is written first to ``OUT/compare.json``; ``resume=OUT`` continues
    a grid that was killed or interrupted: finished and diverged runs are kept, a run with a committed epoch is
    resumed from it, any other is started again, and the table is written at the end as if nothing had happened.
    A run whose loss diverges is recorded as diverged (in ``runs.csv`` and the table) and the grid goes on.
    """
    from embdrop import recipes

    cores = os.cpu_count() or 1
    if jobs is not None:  # before anything is written
        _checks.integer("--jobs", jobs, low=1, high=max(4 * cores, 64) + 1)
    if resume is not None:
        out, plan = _read_plan(Path(resume))
        recipe, seeds = plan["recipe"], plan["seeds"]
        runs = [
            PlannedRun(r["cell"], r["seed"], r["overrides"], out / r["folder"] / f"seed-{r['seed']}")
            for r in plan["runs"]
        ]
        if jobs is None:
            jobs = plan.get("jobs")
        created = False
    else:
        seeds = _checks.integer("--seeds", seeds, low=1, high=1001)
        grid = parse_vary(list(vary), recipe)
        named = parse_cells(list(cells), recipe) or [("", [])]
        recipes.resolve(recipe, list(overrides))  # checks the --set items before anything runs
        import time

        out = Path(out) if out is not None else Path("runs") / f"compare-{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise _checks.invalid("--out", "a new or empty directory (continue a compare with --resume)",
                                  repr(str(out)))  # fmt: skip
        runs = []
        for (name, sets), combo in itertools.product(named, itertools.product(*[[(f, v) for v in vs]
                                                                                for f, vs in grid])):  # fmt: skip
            cell = ",".join([name] * bool(name) + [f"{f}={v}" for f, v in combo])
            folder = "_".join([name] * bool(name) + [f"{f.split('.')[-1]}-{v}" for f, v in combo]) or "default"
            for seed in range(seeds):
                items = [*overrides, *sets, *(f"{f}={v}" for f, v in combo), f"train.seed={seed}"]
                runs.append(PlannedRun(cell, seed, items, out / folder / f"seed-{seed}"))
        if len(runs) > 10_000:
            raise _checks.invalid("--vary", "a grid of at most 10,000 runs", f"{len(runs):,} runs")
        for r in runs[::seeds]:  # every cell's training fields, before any process starts
            check_train(recipes.resolve(recipe, r.overrides).train)
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            plan = {"format": FORMAT, "recipe": recipe, "seeds": seeds, "jobs": jobs,
                    "runs": [{"cell": r.cell, "seed": r.seed, "overrides": r.overrides,
                              "folder": r.out.parent.name} for r in runs]}  # fmt: skip
            for r in runs:
                r.out.parent.mkdir(exist_ok=True)
            write_json(out / "compare.json", plan, indent=1)
        except OSError as e:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise _checks.invalid(
                "--out", "a directory that can be written", f"{str(out)!r} ({e.strerror or e})"
            ) from None
    jobs = _checks.integer("--jobs", jobs if jobs is not None else cores, low=1, high=max(4 * cores, 64) + 1)
    results = {i: _finished(r) for i, r in enumerate(runs)}
    results = {i: v for i, v in results.items() if v is not None}
    todo = [i for i in range(len(runs)) if i not in results]
    jobs = max(1, min(jobs, len(todo) or 1))
    threads = max(1, cores // jobs)
    kept = f", {len(results)} kept from before" if results else ""
    cells_n = len(runs) // seeds
    plural = lambda n, word, end="s": f"{n} {word}{end * (n != 1)}"  # noqa: E731
    log(f"{plural(len(runs), 'run')} ({plural(cells_n, 'cell')} x {plural(seeds, 'seed')}{kept}) on "
        f"{plural(jobs, 'process', 'es')} x {plural(threads, 'thread')}")  # fmt: skip
    try:
        _run_all(recipe, runs, todo, results, jobs, threads, log)
    except _checks.UsageError:  # a cell the recipe refuses: the grid is wrong, so none of it is kept
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        raise CompareInterrupted(out, sum(1 for v in results.values() if v["status"] != "usage"), len(runs)) from None
    rows = []
    for i, r in enumerate(runs):
        res = results[i]
        row = {"cell": r.cell or "default", "seed": r.seed, "status": res["status"]}
        if res["status"] == "finished":
            row.update(res["test"])
            row.update(best_epoch=res["best_epoch"], seconds_per_epoch=res["seconds_per_epoch"])
        rows.append(row)
    finished = [row for row in rows if row["status"] == "finished"]
    if not finished:
        raise _checks.invalid("--vary", "a grid where at least one run trains to the end",
                              f"every one of the {len(rows)} runs diverged (see the .log beside each run)")  # fmt: skip
    metric, higher = _recipe_metric(recipe, finished)
    keys = list(dict.fromkeys(k for row in finished for k in row))
    for row in rows:  # a diverged run has no metrics: NaN, and its status says why
        for k in keys:
            row.setdefault(k, float("nan"))
    _write_csv(out / "runs.csv", [{k: row[k] for k in keys} for row in rows])
    table = summary_table(rows, metric, higher)
    atomic_write(out / "table.md", lambda tmp: Path(tmp).write_text(table, encoding="utf-8"))
    plots.compare_cells(out / "compare.png", finished, metric, f"{recipe}: test {metric}, {seeds} seed"
                        + "s" * (seeds != 1))  # fmt: skip
    log(table)
    return out


class CompareInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the grid: the workers are stopped, the finished runs kept."""

    def __init__(self, out: Path, done: int, total: int) -> None:
        self.out = out
        super().__init__(f"interrupted; {done} of {total} runs finished and are kept (continue with: embdrop "
                         f"compare --resume {out})")  # fmt: skip


def _read_plan(out: Path) -> tuple[Path, dict]:
    from embdrop import recipes

    expected = "a compare directory (with the compare.json that embdrop compare writes first)"
    plan = read_json(out / "compare.json", expected, argument="--resume")
    ok = (isinstance(plan, dict) and plan.get("format") == FORMAT and plan.get("recipe") in recipes.RECIPES
          and isinstance(plan.get("seeds"), int) and isinstance(plan.get("runs"), list) and plan["runs"]
          and all(isinstance(r, dict) and isinstance(r.get("cell"), str) and isinstance(r.get("seed"), int)
                  and isinstance(r.get("folder"), str) and "/" not in r["folder"] and r["folder"] not in (".", "..")
                  and isinstance(r.get("overrides"), list) and all(isinstance(o, str) for o in r["overrides"])
                  for r in plan["runs"]))  # fmt: skip
    if not ok:
        raise _checks.invalid("--resume", expected, f"{str(out / 'compare.json')!r} (not one that compare wrote)")
    return out, plan


def _finished(r: PlannedRun) -> dict | None:
    """What became of a run in an earlier process: finished (its summary.json), diverged (its result file), or
    None: it has to run (again)."""
    if (r.out / "summary.json").is_file():
        s = read_json(r.out / "summary.json", "a finished run", argument="--resume")
        return {"status": "finished", **s}
    if r.result.is_file():
        res = read_json(r.result, "a run's result", argument="--resume")
        if isinstance(res, dict) and res.get("status") == "diverged":
            return res
    return None


def _command(recipe: str, r: PlannedRun, threads: int) -> list[str]:
    """The worker's arguments: --resume where an epoch is committed, otherwise a fresh --out."""
    if (r.out / "checkpoint.safetensors").is_file():
        return ["--resume", str(r.out)]
    if r.out.exists():  # started but killed before its first commit: nothing in it is worth keeping
        shutil.rmtree(r.out)
    return [recipe, "--out", str(r.out), "--set", f"train.threads={threads}",
            *(x for o in r.overrides for x in ("--set", o))]  # fmt: skip


def _last_epoch_line(log: Path) -> str | None:
    """The last "epoch ..." line a worker has written to its log (its tail is enough), or None."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.startswith("epoch ")]
    return lines[-1] if lines else None


def _run_all(recipe: str, runs: list[PlannedRun], todo: list[int], results: dict, jobs: int, threads: int, log) -> None:
    """PlannedRun ``todo`` on ``jobs`` worker processes; stop them all on an error or an interrupt."""
    import signal
    import subprocess
    import sys
    import time

    # Ctrl-C or SIGTERM only sets a flag, read at the top of the loop: raised inside Popen, or between Popen and
    # ``live[i] = ...``, an interrupt would leave a started worker that the ``finally`` below cannot see.
    stop: list[int] = []
    on_signal = lambda signum, frame: stop.append(signum)  # noqa: E731
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    live: dict[int, tuple[subprocess.Popen, object]] = {}
    shown: dict[int, str] = {}  # the last epoch line of each live run's log that was shown
    last_look = time.monotonic()
    queue = list(todo)
    total, done = len(runs), len(results)
    try:
        while queue or live:
            if stop:
                raise KeyboardInterrupt
            while queue and len(live) < jobs:
                i = queue.pop(0)
                r = runs[i]
                r.result.unlink(missing_ok=True)
                logfile = open(r.log, "ab")  # noqa: SIM115 (closed when the worker ends, or in finally)
                cmd = [sys.executable, "-m", "embdrop.recipes.worker", str(os.getpid()), str(r.result), "--",
                       *_command(recipe, r, threads)]  # fmt: skip
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
                live[i] = (proc, logfile)
            time.sleep(0.05)
            if time.monotonic() - last_look >= 1.0:  # progress while runs are under way: each one's new epochs
                last_look = time.monotonic()
                for i in live:
                    line = _last_epoch_line(runs[i].log)
                    if line and line != shown.get(i):
                        shown[i] = line
                        log(f"  {runs[i].cell or 'default'} seed {runs[i].seed}: {line}")
            for i, (proc, logfile) in list(live.items()):
                code = proc.poll()
                if code is None:
                    continue
                logfile.close()
                del live[i]
                r = runs[i]
                res = read_json(r.result, "a run's result", argument="--out") if r.result.is_file() else None
                if code == 2 and isinstance(res, dict) and res.get("status") == "usage":
                    raise _checks.UsageError(res["argument"], res["expected"], res["received"])
                if code == 1 and isinstance(res, dict) and res.get("status") == "diverged":
                    results[i] = res
                    done += 1
                    log(f"[{done}/{total}] {r.cell or 'default'} seed {r.seed}: diverged ({res['message'][:80]})")
                    continue
                if code != 0:
                    raise RuntimeError(f"the run {r.out} ended with exit status {code}; its log: {r.log}")
                results[i] = _finished(r)
                done += 1
                metric = base_metric(results[i]["test"])
                log(f"[{done}/{total}] {r.cell or 'default'} seed {r.seed}: {metric[0]} {metric[1]:.4f}")
    finally:
        for proc, _ in live.values():
            proc.kill()
        for proc, logfile in live.values():
            proc.wait()
            logfile.close()
        for s, handler in previous.items():
            signal.signal(s, handler)

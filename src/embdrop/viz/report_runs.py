"""What the report reads: a run directory's config and metrics, or a compare directory's runs, each file bounded
and checked (see :mod:`embdrop.viz.report`)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from embdrop import _checks


@dataclass
class Run:
    """One run directory, read: its config, epochs, summary (None while unfinished) and where it lives."""

    path: Path
    name: str
    cell: str
    config: dict
    history: list[dict]
    summary: dict | None


@dataclass
class Source:
    """What the user named: a run directory, or a compare directory with its runs and ``runs.csv`` rows."""

    path: Path
    runs: list[Run]
    compare_rows: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------ reading
def _read_jsonl(path: Path, argument: str) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise _checks.invalid(
            argument, "a run directory with a readable metrics.jsonl", f"{str(path)!r} ({e})"
        ) from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise _checks.invalid(argument, "a metrics.jsonl of one JSON object per line",
                                  f"{str(path)!r} (line {i} is not JSON)") from None  # fmt: skip
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            raise _checks.invalid(argument, "a metrics.jsonl of one JSON object per line",
                                  f"{str(path)!r} (line {i} is {type(row).__name__})")  # fmt: skip
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not isinstance(row.get("epoch"), int) or len(numbers) != len(row):
            raise _checks.invalid(argument, "a metrics.jsonl whose rows hold an epoch and numbers",
                                  f"{str(path)!r} (line {i})")  # fmt: skip
        rows.append(row)
    return rows


def _count(n: int, noun: str) -> str:
    """A count and its noun: 1 run, 2 runs."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def read_run(path: Path, name: str, cell: str = "", argument: str = "RUN_DIR") -> Run:
    """A run directory written by ``embdrop train``; a missing or incomplete one is an error naming it."""
    from embdrop._io import read_json

    if not (path / "config.json").is_file():
        raise _checks.invalid(argument, "a run directory of 'embdrop train' (with config.json) or of 'embdrop compare' "
                              "(with runs.csv)", repr(str(path)))  # fmt: skip
    if not (path / "metrics.jsonl").is_file():
        raise _checks.invalid(argument, "a run directory with at least one finished epoch (metrics.jsonl)",
                              f"{str(path)!r} (no metrics.jsonl: the run has not finished an epoch)")  # fmt: skip
    config = read_json(path / "config.json", "a readable config.json", argument=argument)
    if not isinstance(config, dict) or not isinstance(config.get("recipe"), str):
        raise _checks.invalid(argument, "a config.json written by embdrop train (an object naming its recipe)",
                              f"{str(path / 'config.json')!r}")  # fmt: skip
    history = _read_jsonl(path / "metrics.jsonl", argument)
    if not history:
        raise _checks.invalid(argument, "a run directory with at least one finished epoch",
                              f"{str(path)!r} (metrics.jsonl is empty)")  # fmt: skip
    summary = read_json(path / "summary.json", "a readable summary.json", argument=argument) if (
        path / "summary.json").is_file() else None  # fmt: skip
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if summary is not None and not (
        isinstance(summary, dict) and isinstance(summary.get("test"), dict)
        and all(number(v) for v in summary["test"].values()) and isinstance(summary.get("best_epoch"), int)
        and number(summary.get("seconds_per_epoch")) and isinstance(summary.get("parameters"), int)
    ):  # fmt: skip
        raise _checks.invalid(argument, "a summary.json written by embdrop train (its test metrics as numbers)",
                              f"{str(path / 'summary.json')!r}")  # fmt: skip
    return Run(path, name, cell, config, history, summary)


def _cell_names(compare_dir: Path) -> dict[str, str]:
    """{folder: cell name} from the compare's plan (``compare.json``), so that every table of the page names a cell
    as ``runs.csv`` and ``table.md`` do ("model.kind=hash", not its folder "kind-hash"); {} without a plan."""
    try:
        plan = json.loads((compare_dir / "compare.json").read_text(encoding="utf-8"))
        return {str(r["folder"]): str(r["cell"]) for r in plan["runs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_source(path: str | Path) -> Source:
    """A run directory or a compare directory (``runs.csv`` and one ``CELL/seed-N`` run per row)."""
    p = Path(path)
    if not p.is_dir():
        raise _checks.invalid("RUN_DIR", "an existing run or compare directory", repr(str(path)))
    if (p / "runs.csv").is_file():
        try:
            with open(p / "runs.csv", newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise _checks.invalid("RUN_DIR", "a compare directory with a readable runs.csv",
                                  f"{str(path)!r} ({type(e).__name__}: {e})") from None  # fmt: skip
        if any(None in r or any(v is None for v in r.values()) for r in rows):
            raise _checks.invalid("RUN_DIR", "a runs.csv whose rows have a value for every column",
                                  repr(str(path)))  # fmt: skip
        if not rows or "cell" not in rows[0] or "seed" not in rows[0]:
            raise _checks.invalid("RUN_DIR", "a compare directory whose runs.csv has cell and seed columns",
                                  repr(str(path)))  # fmt: skip
        rows = [r for r in rows if r.get("status", "finished") == "finished"]  # a diverged run has no metrics
        if not rows:
            raise _checks.invalid("RUN_DIR", "a compare directory with at least one finished run", repr(str(path)))
        for r in rows:
            r.pop("status", None)
            for k, v in r.items():
                if k not in ("cell",):
                    try:
                        r[k] = float(v) if k != "seed" else int(v)
                    except ValueError:
                        raise _checks.invalid(
                            "RUN_DIR", "a runs.csv of numbers", f"{str(path)!r} ({k}={v!r})"
                        ) from None
        names = _cell_names(p)
        runs = []
        for d in sorted(q for q in p.glob("*/seed-*") if (q / "config.json").is_file()):
            cell = names.get(d.parent.name, d.parent.name)
            runs.append(read_run(d, f"{cell}/{d.name}", cell, argument="RUN_DIR"))
        return Source(p, runs, rows)
    if not (p / "config.json").is_file() and any(p.glob("*/seed-*/config.json")):
        raise _checks.invalid("RUN_DIR", "a finished compare directory (with runs.csv) or one of its runs",
                              f"{str(path)!r} (no runs.csv yet: the compare has not finished)")  # fmt: skip
    return Source(p, [read_run(p, p.name)])

"""A comparison's results as a table: per cell, the mean of the headline metric over seeds with its interval, and
the rows as CSV (see :mod:`embdrop.recipes.compare`)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from embdrop._io import atomic_write
from embdrop.stats import base_metric, interval


def _recipe_metric(recipe: str, rows: list[dict]) -> tuple[str, bool]:
    metric, _ = base_metric({k: v for k, v in rows[0].items() if k not in ("cell", "seed")})
    return metric, metric in ("accuracy", "auc")


def summary_table(rows: list[dict], metric: str, higher: bool) -> str:
    """Markdown: one line per cell, mean ± std and [95% interval] of every test metric over the runs that finished;
    ``*`` on the best cell of ``metric`` when its interval does not overlap any other cell's. A run with
    ``status`` "diverged" counts in the cell's ``runs`` column only."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    ok = [r for r in rows if r.get("status", "finished") == "finished"]
    skip = ("cell", "seed", "status", "best_epoch", "seconds_per_epoch")
    keys = [k for k in ok[0] if k not in skip]
    of = {c: [r for r in ok if r["cell"] == c] for c in cells}
    nan4 = (float("nan"),) * 4
    stats = {c: {k: interval([r[k] for r in of[c]]) if of[c] else nan4 for k in keys} for c in cells}
    ranked = [c for c in cells if of[c]]
    means = {c: stats[c][metric][0] for c in ranked}
    best = (max if higher else min)(ranked, key=means.__getitem__)
    lo, hi = stats[best][metric][2], stats[best][metric][3]
    separated = (
        len(ranked) > 1
        and len(ranked) == len(cells)
        and all((stats[c][metric][3] < lo) if higher else (stats[c][metric][2] > hi) for c in cells if c != best)
    )
    diverged = len(rows) - len(ok)
    clipped: set[str] = set()
    lines = [f"| cell | runs | {' | '.join(keys)} |", "|---" * (len(keys) + 2) + "|"]
    for c in cells:
        total = sum(1 for r in rows if r["cell"] == c)
        runs = f"{len(of[c])} of {total}" + (f" ({total - len(of[c])} diverged)" if len(of[c]) < total else "")
        parts = []
        for k in keys:
            mean, std, low, high = stats[c][k]
            mark = " *" if (k == metric and c == best and separated) else ""
            if not of[c]:
                parts.append("diverged")
            elif len(of[c]) == 1:
                parts.append(f"{mean:.4f} (1 seed: no spread)")
            else:
                lo_cut, hi_cut = _bounds(k)
                shown_low = f"{max(low, lo_cut):.4f}" + ("†" if lo_cut is not None and low < lo_cut else "")
                shown_high = f"{min(high, hi_cut):.4f}" + ("†" if hi_cut is not None and high > hi_cut else "")
                clipped.update({k} if "†" in shown_low + shown_high else set())
                parts.append(f"{mean:.4f} ± {std:.4f} [{shown_low}, {shown_high}]{mark}")
        lines.append(f"| {c} | {runs} | {' | '.join(parts)} |")
    n = max(len(v) for v in of.values())
    note = f"\nmean ± std [95% interval of the mean] over {n} seed{'s' if n != 1 else ''}"
    if clipped:
        note += f" († an end beyond the range of {', '.join(sorted(clipped))} is cut at it: too few seeds)"
    note += f" (the runs that finished; {diverged} diverged and are left out)" if diverged else ""
    note += f"; * marks the best {metric} only where its interval separates from every other cell's"
    note += ("" if separated else " (none does here)") + ".\n"
    return "\n".join(lines) + "\n" + note


def _bounds(key: str) -> tuple[float, float]:
    """The range a test metric can take: [0, 1] for accuracies and AUC, [0, 100] for BLEU, >= 0 otherwise (losses,
    RMSE, perplexity)."""
    if "accuracy" in key or key.endswith("auc"):
        return 0.0, 1.0
    if "bleu" in key:
        return 0.0, 100.0
    if "loss" in key or "rmse" in key or "perplexity" in key:
        return 0.0, math.inf
    return -math.inf, math.inf


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)

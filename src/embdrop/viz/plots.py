"""The plots a run and a compare write beside their results: matplotlib, imported when a plot is drawn."""

from __future__ import annotations

import math
from pathlib import Path

from embdrop import _extras
from embdrop._io import atomic_write


def learning_curve(path: Path, history: list[dict], metric: str, title: str) -> None:
    """Loss and ``metric`` per epoch, train and validation, side by side (a run's ``curve.png``)."""
    _extras.need("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("loss", metric), strict=True):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"valid_{key}"] for h in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def compare_cells(path: Path, rows: list[dict], metric: str, title: str) -> None:
    """The test ``metric`` per compare cell: one dot per seed, the mean and its 95% interval (``compare.png``)."""
    from embdrop.stats import interval

    _extras.need("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys(r["cell"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(cells) + 2), 4))
    for x, c in enumerate(cells):
        values = [r[metric] for r in rows if r["cell"] == c]
        ax.plot([x] * len(values), values, "o", color="0.6", ms=4)
        mean, _, low, high = interval(values)
        if math.isfinite(low):
            ax.errorbar([x], [mean], yerr=[[mean - low], [high - mean]], fmt="s", color="C0", capsize=6)
        else:
            ax.plot([x], [mean], "s", color="C0")
    ax.set_xticks(range(len(cells)), [c.replace(",", "\n") for c in cells], fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)

"""Statistics of runs over seeds: the mean with its 95% interval, and which test metric headlines a run.

Torch-free and free of the training package, so that the plots and the report read them without importing it.
"""

from __future__ import annotations

import math
import statistics

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


def base_metric(test: dict) -> tuple[str, float]:
    """(name, value) of the metric that headlines a run's test metrics: the recipes' own in this order, else the
    first."""
    for key in ("auc", "accuracy", "perplexity", "rmse"):  # the recipes' own metrics (flights: AUC first)
        if key in test:
            return key, test[key]
    key = next(iter(test))
    return key, test[key]

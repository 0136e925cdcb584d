"""Paired bootstrap over cases: is a difference between two runs real?

Both runs are scored on the same cases, so cases are resampled in pairs (the same resampled
case indices for both runs). For a per-case statistic x (e.g. AP@30 of each image, top-1 hit
0/1) and a metric that is the mean of x over cases:

- the 95% confidence interval of a run's metric is the 2.5th-97.5th percentile of the
  resampled means (percentile bootstrap);
- the difference d = mean(x_b) - mean(x_a) has its interval from the resampled differences;
- the two-sided p-value for "no difference" is 2 x min(P*(d <= 0), P*(d >= 0)), with P* the
  share of resamples, floored at 1/B (a bootstrap cannot say less). It is the standard
  percentile-bootstrap test; with few cases treat p near alpha with care.

A fixed seed makes every figure reproducible from the per-case tables alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20250514  # NOVA's arXiv date; any fixed value works


def resample_indices(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """[resamples, n] case indices drawn with replacement; shared by every run compared."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedDifference:
    delta: float  # mean(b) - mean(a)
    low: float
    high: float
    p_value: float
    n_cases: int


def mean_ci(x: Sequence[float], idx: np.ndarray, level: float = 0.95) -> Interval:
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        return Interval(0.0, 0.0, 0.0)
    means = arr[idx].mean(axis=1)
    a = (1 - level) / 2
    return Interval(float(arr.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))


def paired_difference(a: Sequence[float], b: Sequence[float], idx: np.ndarray,
                      level: float = 0.95) -> PairedDifference:
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.shape != xb.shape:
        raise ValueError(f"paired samples differ in size: {xa.shape} vs {xb.shape}")
    if xa.size == 0:
        return PairedDifference(0.0, 0.0, 0.0, 1.0, 0)
    d = xb - xa
    boot = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    resamples = boot.size
    if np.all(d == 0):
        p = 1.0
    else:
        p = 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0)))
        p = min(1.0, max(p, 1.0 / resamples))
    return PairedDifference(float(d.mean()), float(np.quantile(boot, alpha)),
                            float(np.quantile(boot, 1 - alpha)), p, int(xa.size))

"""Case-clustered paired bootstrap: draws, standard errors, intervals, tests, adjustment, MDE.

Why clusters: the slices of one patient case share the patient, the disease and usually the
model's mistake, so they are not independent. The resampling unit is the case (`case_id`):
a draw picks G cases with replacement out of the G cases compared and every slice of a
drawn case comes along, as often as the case was drawn. One [B, G] matrix of draw counts is
shared by every run compared (paired), so run-to-run differences keep their pairing.

Definitions (B resamples, theta* the metric on a resample, d* = theta*_run - theta*_base):
- interval: percentile, the (1-level)/2 and (1+level)/2 quantiles of theta* (numpy linear;
  for the distinct-label metrics theta* is first centred on theta, see comparison.py);
- se: for a mean over cases, CR1 cluster-robust: sqrt(G/(G-1) * sum_g (sum_{i in g} u_i)^2)
  with u_i = m_i (y_i - mean) / sum(m) (m = 1 where the case counts), G = clusters with a
  counted case; for every other metric the bootstrap SD of theta* (ddof 1);
- p, by default (`wald_p`): the Wald test of "no difference" on the cluster-robust SE of
  the paired delta, p = 2 P(T > |delta| / se_delta) with T Student's t on G - 1 degrees of
  freedom (the usual reference for CR1 with G clusters; the normal as G grows). Not
  floored: Holm over the ~315 tests of 10 runs x 35 metrics needs p < 0.05 / 315, which
  B = 2,000 resamples cannot resolve (a bootstrap p is at least 1/B; `min_resamples`).
  A tie (delta = 0, identical runs) gives p = 1.
  Optional (`bootstrap_p`): the two-sided percentile-bootstrap test,
  p = min(1, 2 min(#{d* <= 0}, #{d* >= 0}) / B), floored at 1/B;
- adjustment over all metric x run tests of one comparison: Holm (step-down, family-wise) or
  Benjamini-Hochberg (step-up, false discovery rate), or none;
- se_delta, the paired SE: CR1 of u_run - u_base (the two runs' influences, same clusters)
  for a mean, else the bootstrap SD of d*;
- MDE, the smallest true difference found with probability `power` by the two-sided level-alpha
  test above given the observed paired SE: mde = (q_{1-alpha/2} + q_{power}) * se_delta with
  q the t (G - 1 df) or normal quantiles (normal, alpha 0.05, power 0.8: 2.80 se_delta);
  alpha as chosen, not adjusted for the other tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

from nova_mlflow.config import DEFAULT_RESAMPLES, DEFAULT_SEED  # one definition

ADJUSTMENTS = ("holm", "bh", "none")


@dataclass(frozen=True)
class Draws:
    """Cluster draw counts shared by every run: counts[b, g] = times cluster g is in draw b."""

    clusters: tuple[str, ...]  # sorted distinct cluster ids
    counts: np.ndarray  # [B, G] float64

    @cached_property
    def counts_t(self) -> np.ndarray:
        """[G, B] contiguous: what weighted sums multiply with (shared like the draws)."""
        out = np.ascontiguousarray(self.counts.T)
        out.flags.writeable = False
        return out


def cluster_draws(cluster_ids: Sequence, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED) -> Draws:
    """B draws of G clusters with replacement (a multinomial count per cluster).

    Depends only on the sorted distinct ids, B and the seed: reproducible, whatever the row
    order of the tables. The three tasks of a comparison (and repeated gates) usually share
    their clusters, so the draws are made once (the array is read-only).
    """
    return _draws(tuple(sorted({str(c) for c in cluster_ids})), resamples, seed)


@lru_cache(maxsize=8)
def _draws(clusters: tuple[str, ...], resamples: int, seed: int) -> Draws:
    g = len(clusters)
    if g == 0:
        return Draws(clusters, np.zeros((resamples, 0)))
    picks = np.random.default_rng(seed).integers(0, g, size=(resamples, g))
    flat = (picks + g * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * g).reshape(resamples, g).astype(float)
    counts.flags.writeable = False
    return Draws(clusters, counts)


class Weights:
    """Case weights of B resamples (or of the full sample: one row of ones) for one table.

    `codes[i]` is the cluster index of row i. Weighted sums go through cluster totals
    (counts @ per-cluster sums), which is G columns instead of n rows.
    """

    def __init__(self, counts: np.ndarray, codes: np.ndarray,
                 counts_t: np.ndarray | None = None) -> None:
        self.counts = np.atleast_2d(np.asarray(counts, dtype=float))
        self.codes = np.asarray(codes, dtype=np.intp)
        self.n_clusters = self.counts.shape[1]
        self.memo: dict = {}  # results shared by several metrics (COCO AP per threshold)
        if counts_t is not None:  # Draws.counts_t, made once per set of draws
            self.__dict__["_counts_t"] = counts_t

    @classmethod
    def unit(cls, codes: np.ndarray, n_clusters: int) -> Weights:
        return cls(np.ones((1, n_clusters)), codes)

    def cluster_sums(self, x: np.ndarray) -> np.ndarray:
        """[G] (or [G, k]) totals of a per-row array."""
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            return np.bincount(self.codes, weights=x, minlength=self.n_clusters)
        return np.stack([self.cluster_sums(col) for col in x.T], axis=1)

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Weighted sum of a per-row array on every resample: [B] (or [B, k])."""
        s = self.cluster_sums(x)
        if s.ndim == 1:
            return self.counts @ s  # matrix-vector
        return (s.T @ self._counts_t).T  # [k, G] @ [G, B]: measured faster than [B, G] @ [G, k]

    @cached_property
    def _counts_t(self) -> np.ndarray:
        return np.ascontiguousarray(self.counts.T)

    @cached_property
    def rows(self) -> np.ndarray:
        """[n, B] integer weight of every row (what the order-dependent COCO AP needs)."""
        return self._counts_t[self.codes].astype(np.int32)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0 (the package's convention for an empty denominator)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


# --- standard errors ---------------------------------------------------------------------------

def mean_influence(y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-row influence u_i = m_i (y_i - mean) / sum(m) of a (masked) mean over rows."""
    y = np.asarray(y, dtype=float)
    m = np.ones_like(y) if mask is None else np.asarray(mask, dtype=float)
    total = m.sum()
    if total == 0:
        return np.zeros_like(y)
    mean = (m * y).sum() / total
    return m * (y - mean) / total


def cr1_se(influence: np.ndarray, codes: np.ndarray, counted: np.ndarray | None = None) -> float:
    """CR1 cluster-robust SE from per-row influences (sum over clusters, G/(G-1) factor).

    `counted` marks the rows that enter the estimate; G counts the clusters holding one.
    """
    codes = np.asarray(codes, dtype=np.intp)
    keep = np.ones(len(codes), bool) if counted is None else np.asarray(counted, bool)
    g = len(np.unique(codes[keep]))
    if g < 2:
        return 0.0
    totals = np.bincount(codes, weights=np.asarray(influence, dtype=float))
    return float(np.sqrt(g / (g - 1) * np.sum(totals ** 2)))


def bootstrap_se(boot: np.ndarray) -> float:
    return float(np.std(boot, ddof=1)) if len(boot) > 1 else 0.0


# --- intervals, tests, adjustment, power ---------------------------------------------------------

def percentile_ci(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo, hi = np.quantile(np.asarray(boot, dtype=float), [a, 1 - a])
    return float(lo), float(hi)


def bootstrap_p(delta_boot: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p of 'no difference' (module docstring)."""
    d = np.asarray(delta_boot, dtype=float)
    b = len(d)
    if b == 0:
        return 1.0
    k = min(int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0)))
    return float(min(1.0, max(2 * k / b, 1 / b)))


def wald_p(delta: float, se_delta: float, df: int | None = None) -> float:
    """Two-sided p of 'no difference' from the paired SE (t on df degrees of freedom, normal
    when df is None); 1 for a tie."""
    if delta == 0:
        return 1.0
    if se_delta <= 0:
        return 0.0
    z = abs(delta) / se_delta
    return float(2 * (norm.sf(z) if df is None else student_t.sf(z, max(df, 1))))


def adjust_p(p: Sequence[float], method: str = "holm") -> list[float]:
    """Holm or Benjamini-Hochberg adjusted p-values (same order as given); 'none' copies."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {ADJUSTMENTS}, not {method!r}")
    arr = np.asarray(p, dtype=float)
    m = len(arr)
    if method == "none" or m == 0:
        return [float(x) for x in arr]
    order = np.argsort(arr, kind="mergesort")
    s = arr[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * s))
    else:
        adj = np.minimum.accumulate(np.minimum(1.0, m / np.arange(1, m + 1) * s)[::-1])[::-1]
    out = np.empty(m)
    out[order] = adj
    return [float(x) for x in out]


def mde(se_delta: float, alpha: float = 0.05, power: float = 0.8, df: int | None = None) -> float:
    """Minimum detectable difference: (q_{1-alpha/2} + q_power) * se_delta (module docstring)."""
    return float((_q(1 - alpha / 2, df) + _q(power, df)) * se_delta)


@lru_cache(maxsize=256)
def _q(q: float, df: int | None) -> float:
    # scipy's ppf costs ~0.5 ms a call: 315 tests x 2
    return float(norm.ppf(q) if df is None else student_t.ppf(q, max(df, 1)))


def min_resamples(n_tests: int, alpha: float = 0.05, adjust: str = "holm") -> int:
    """Resamples needed so the smallest possible p (1/B) can pass `adjust` over n_tests."""
    factor = 1 if adjust == "none" else n_tests  # BH too, for a single small p among many
    return int(np.ceil(factor / alpha)) + 1

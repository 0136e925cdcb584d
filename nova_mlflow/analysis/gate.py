"""`gate`'s decision: promote a challenger only on a real gain over the champion (pure).

Steps: the run's configuration (model, provider, frame, prompts with their texts,
generation settings) is logged as a pyfunc from code (tracking_pyfunc.py) and registered as
a new version of `--registered-model`, which gets the alias `challenger`. Then it meets the
current `champion` (its source run is the version's tag nova.run_id):

Decision rule, per chosen metric, over the cases both runs scored (paired by filename,
sorted, one fixed seed; metrics/stats.py):
    delta = mean(challenger) - mean(champion) >= min_delta   AND   p < alpha,
with p the TWO-sided paired bootstrap p-value of "no difference" (so, since delta must be
positive, the test is one-sided at alpha/2: deliberately conservative). Promotion (alias
`champion`) needs every chosen metric to pass; a tie (delta 0, p = 1) is rejected. With no
champion yet the first version is promoted. Default metric: the headline of the first task
the run scored, in the order localization/mAP30, diagnosis/top1, captioning/meteor.

The decision, reason and figures are stored as tags on the model version and on the run
(nova.gate_*), so anyone can recompute them from the two runs' logged per-case tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nova_mlflow.analysis.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_difference, resample_indices
from nova_mlflow.analysis.compare import BOOTSTRAP_METRICS, paired
from nova_mlflow.errors import InputError

DEFAULT_METRIC_ORDER = ("localization/mAP30", "diagnosis/top1", "captioning/meteor")
PROMOTED, REJECTED = "promoted", "rejected"
EPS = 1e-12  # float slack when comparing a delta with min_delta


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    n_cases: int
    champion: float
    challenger: float
    delta: float
    low: float
    high: float
    p_value: float
    passed: bool
    why: str


@dataclass
class GateResult:
    decision: str
    reason: str
    registered_model: str
    version: str
    run_id: str
    metrics: list[str]
    champion_version: str | None = None
    champion_run_id: str | None = None
    checks: list[MetricCheck] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED

    def as_json(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "checks"},
                "checks": [asdict(c) for c in self.checks]}


# --- the statistical decision (pure: reproducible from the per-case tables) ---------------

def check_metric(metric: str, champion: dict[str, float], challenger: dict[str, float],
                 min_delta: float, alpha: float, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> MetricCheck:
    """One metric's verdict over the shared cases (see the module docstring)."""
    names, m = paired([champion, challenger])
    if not names:
        return MetricCheck(metric, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, False,
                           f"{metric}: no case scored by both runs")
    d = paired_difference(m[0], m[1], resample_indices(len(names), resamples, seed))
    big = d.delta >= min_delta - EPS
    real = d.p_value < alpha
    gain = d.delta > 0
    fails = ([] if big else [f"delta < min-delta {100 * min_delta:.2f} pts"]) + \
        ([] if real else [f"p >= alpha {alpha:g}"]) + ([] if gain else ["no gain"])
    passed = not fails
    why = (f"{metric}: {100 * m[1].mean():.2f} vs {100 * m[0].mean():.2f}, delta "
           f"{100 * d.delta:+.2f} pts (95% CI {100 * d.low:+.2f}..{100 * d.high:+.2f}), "
           f"p={d.p_value:.4f} over {len(names)} cases; "
           + ("passes" if passed else "fails: " + ", ".join(fails)))
    return MetricCheck(metric, len(names), float(m[0].mean()), float(m[1].mean()), d.delta,
                       d.low, d.high, d.p_value, passed, why)


def decide(checks: list[MetricCheck]) -> tuple[str, str]:
    """Promote only if every metric passes; the reason lists failures first."""
    failed = [c for c in checks if not c.passed]
    if failed:
        return REJECTED, "rejected: " + "; ".join(c.why for c in failed)
    return PROMOTED, "promoted: beats the champion on every metric: " + "; ".join(
        c.why for c in checks)


def default_metrics(tasks: set[str]) -> list[str]:
    for metric in DEFAULT_METRIC_ORDER:
        if BOOTSTRAP_METRICS[metric][0] in tasks:
            return [metric]
    raise InputError("the run has no per-case table for localization, diagnosis or captioning; "
                     "nothing to gate on")

"""`gate`'s promotion rule over a comparison of champion and challenger (pure, no MLflow).

Promote iff, for every gated metric, the lower bound of the 95% CI of the gain exceeds
`min_delta` AND the adjusted p is below `alpha`; gain = delta (challenger minus champion),
or -delta for a metric where lower is better (FP30). A metric without a better direction
(entropy, mean words) cannot be gated; a tie (delta 0, p 1) never passes. The comparison is
`compare_tables` over the gated metrics only, so the adjustment (Holm by default) runs over
those tests, with the same draws, SEs and p-values `compare` reports.

Default metric: the headline of the first task the run scored, in the order
localization/mAP30, diagnosis/top1, captioning/meteor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from nova_mlflow.analysis.comparison import Comparison, StatsConfig, compare_tables

DEFAULT_METRIC_ORDER = ("localization/mAP30", "diagnosis/top1", "captioning/meteor")
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class GateCheck:
    metric: str
    gain: float | None  # challenger minus champion, signed so that positive is better
    gain_low: float | None  # lower CI bound of the gain
    p_adjusted: float | None
    passed: bool
    why: str


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    checks: tuple[GateCheck, ...]


def default_metrics(tasks: set[str]) -> list[str]:
    """The gated metric when none is chosen; [] when the run scored none of those tasks."""
    return [m for m in DEFAULT_METRIC_ORDER if m.split("/")[0] in tasks][:1]


def gate_decision(comp: Comparison, challenger: str, metrics: Sequence[str],
                  min_delta: float = 0.0, alpha: float = 0.05) -> GateDecision:
    """Promote iff every metric's gain_low > min_delta and p_adjusted < alpha."""
    checks = []
    for key in metrics:
        ms = comp.metrics.get(key)
        if ms is None:
            checks.append(GateCheck(key, None, None, None, False,
                                    f"not compared: {comp.skipped.get(key, 'unknown metric')}"))
            continue
        if ms.direction == 0:
            checks.append(GateCheck(key, None, None, None, False, "no better direction"))
            continue
        s = ms.runs[challenger]
        assert s.delta is not None and s.delta_low is not None and s.delta_high is not None
        gain = ms.direction * s.delta
        low = s.delta_low if ms.direction > 0 else -s.delta_high
        p = s.p_adjusted if s.p_adjusted is not None else 1.0
        fails = [] if low > min_delta else [f"CI low {low:+.4f} <= min-delta {min_delta:g}"]
        if p >= alpha:
            fails.append(f"adjusted p {p:.4g} >= alpha {alpha:g}")
        checks.append(GateCheck(key, gain, low, p, not fails, "; ".join(fails) or "passes"))
    return GateDecision(bool(checks) and all(c.passed for c in checks), tuple(checks))


def gate(champion: Mapping[str, pd.DataFrame], challenger: Mapping[str, pd.DataFrame],
         metrics: Sequence[str], cfg: StatsConfig = StatsConfig(), min_delta: float = 0.0,
         ids: tuple[str, str] = (CHAMPION, CHALLENGER)) -> tuple[GateDecision, Comparison]:
    """Champion vs challenger (task -> per-case table each) on the gated metrics only, so the
    adjustment runs over those tests; `ids` names them in the comparison (their run ids)."""
    if ids[0] == ids[1]:
        raise ValueError("the champion and the challenger are the same run")
    comp = compare_tables({ids[0]: champion, ids[1]: challenger}, ids[0],
                          replace(cfg, metrics=tuple(metrics)))
    return gate_decision(comp, ids[1], metrics, min_delta, cfg.alpha), comp

"""Compare runs from their per-case tables (pure, no MLflow).

Why here: `compare` and `gate` must give the same figures from the same logged tables, so
both call `compare_tables` (gate.py applies the promotion rule to its result); this module
only aligns tables and applies analysis/stats.py to analysis/metric_specs.py.

Alignment, per task: the compared cases are the filenames present in every run's table (or
the `cases` the caller passes, which every run must hold), in filename order; a filename
logged twice keeps its last row. `left_out[task][run]` counts each run's rows outside them.
The cluster of a row is its `case_id` (it must agree across runs). One draw matrix per task
(from its clusters, the resamples and the seed) is shared by every run and metric.

Output per metric and run: value (unit weights over the compared cases), percentile CI, SE
(CR1 for means, bootstrap otherwise), and against the baseline: delta = run - baseline with
its percentile CI, two-sided p (StatsConfig.p_method: "wald", the default, a t test on the
paired cluster-robust SE with G - 1 degrees of freedom; or "bootstrap", the percentile
bootstrap p floored at 1/B), p adjusted over all metric x run tests of this comparison, and
the MDE (null for the baseline itself).

Centred metrics (coverage, entropy: MetricSpec.centred): a resample repeats cases and so
holds fewer distinct labels, which pulls every resampled value down (the percentile interval
of the entropy can miss the observed value altogether). Their draws are shifted by the
resampling bias, theta* - (mean(theta*) - theta), clipped to the metric's range, before the
interval, the paired delta, p and SE; `boot_bias` reports the shift.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from nova_mlflow.analysis import stats
from nova_mlflow.analysis.metric_specs import (
    SKIPPED,
    SPECS,
    LABEL_COLUMNS,
    TASK_COLUMNS,
    TEXT_COLUMNS,
    MetricSpec,
    TaskTable,
    evaluate,
)

CLUSTER = "case_id"
#: How p is computed (StatsConfig.p_method), as the comparison's output states it.
P_METHODS = {
    "wald": ("two-sided t test of no difference on the paired delta's cluster-robust SE "
             "(CR1 for means over cases, bootstrap SD of the paired draws otherwise), "
             "G - 1 degrees of freedom; not floored, so it survives adjustment over many tests"),
    "bootstrap": ("two-sided percentile-bootstrap test of no difference on the paired draws, "
                  "floored at 1/resamples"),
}
CI_METHOD = ("percentile interval of the case-clustered paired bootstrap (whole cases drawn "
             "with replacement, the same draws for every run)")
Tables = Mapping[str, Mapping[str, pd.DataFrame]]  # run id -> task -> per-case table


@dataclass(frozen=True)
class StatsConfig:
    resamples: int = stats.DEFAULT_RESAMPLES
    seed: int = stats.DEFAULT_SEED
    level: float = 0.95
    alpha: float = 0.05
    power: float = 0.8
    adjust: str = "holm"
    metrics: tuple[str, ...] = ()  # empty: every metric the tables allow
    p_method: str = "wald"  # t test on the paired cluster-robust SE; or "bootstrap" (>= 1/B)


@dataclass
class RunStats:
    value: float
    ci_low: float
    ci_high: float
    se: float
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    mde: float | None = None
    se_delta: float | None = None
    boot_bias: float | None = None  # mean resampled value minus value, for centred metrics


@dataclass
class MetricStats:
    key: str
    kind: str  # "mean" | "corpus"
    direction: int
    n_cases: int
    n_clusters: int
    runs: dict[str, RunStats]
    boot: np.ndarray = field(repr=False)  # [runs, B] resampled values, run order as `runs`
    centred: bool = False  # draws shifted onto the observed value (MetricSpec.centred)

    @property
    def se_method(self) -> str:
        return "cr1" if self.kind == "mean" else "bootstrap"


@dataclass
class Comparison:
    baseline: str
    run_ids: list[str]
    config: StatsConfig
    n_clusters: int
    metrics: dict[str, MetricStats]
    skipped: dict[str, str]
    left_out: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The `compare --json` object (interface.md), plus kind/se_method/n per metric."""
        c = self.config
        return {
            "baseline_run_id": self.baseline, "runs": list(self.run_ids),
            "resamples": c.resamples, "seed": c.seed, "level": c.level, "alpha": c.alpha,
            "power": c.power, "adjust": c.adjust, "p_method": c.p_method,
            "p_method_text": P_METHODS[c.p_method], "ci_method": CI_METHOD, "cluster": CLUSTER,
            "n_clusters": self.n_clusters, "skipped": dict(self.skipped),
            "left_out": self.left_out, "notes": list(self.notes),
            "metrics": {k: {"kind": m.kind, "se_method": m.se_method, "direction": m.direction,
                            "centred": m.centred, "n_cases": m.n_cases,
                            "n_clusters": m.n_clusters,
                            "runs": {r: asdict(s) for r, s in m.runs.items()}}
                        for k, m in self.metrics.items()},
        }


@dataclass
class Aligned:
    tables: list[TaskTable]  # one per run, rows in filename order
    codes: np.ndarray
    clusters: tuple[str, ...]
    draws: stats.Draws
    left_out: dict[str, int]
    weights: stats.Weights  # the draws as case weights, shared by every metric (memo)


def align(task: str, frames: Mapping[str, pd.DataFrame], cfg: StatsConfig,
          cases: Collection[str] | None = None) -> Aligned:
    """Rows of every run on the compared cases, their clusters and the shared draws."""
    clean = {r: f.drop_duplicates("filename", keep="last").assign(filename=lambda d: d[
        "filename"].astype(str)).set_index("filename", drop=False) for r, f in frames.items()}
    common = set.intersection(*(set(f.index) for f in clean.values()))
    if cases is not None:
        wanted = {str(c) for c in cases}
        lacking = {r: len(wanted - set(f.index)) for r, f in clean.items()}
        if any(lacking.values()):
            raise ValueError(f"{task}: the shared cases are not in every run's table: {lacking}")
        common = wanted
    names = sorted(common)
    first = next(iter(clean.values()))
    case_ids = first.loc[names, CLUSTER].astype(str).to_numpy() if names else np.array([], str)
    for r, f in clean.items():
        if names and not np.array_equal(f.loc[names, CLUSTER].astype(str).to_numpy(), case_ids):
            raise ValueError(f"{task}: run {r} gives other case_ids to the same filenames")
    draws = stats.cluster_draws(case_ids, cfg.resamples, cfg.seed)
    codes = np.searchsorted(np.array(draws.clusters), case_ids).astype(np.intp)
    tables = [TaskTable(f.loc[names].reset_index(drop=True), codes, len(draws.clusters))
              for f in clean.values()]
    return Aligned(tables, codes, draws.clusters, draws,
                   {r: len(f) - len(names) for r, f in clean.items()},
                   stats.Weights(draws.counts, codes, draws.counts_t))


def _problem(spec: MetricSpec, run_ids: Sequence[str], tables: Sequence[TaskTable]) -> str | None:
    """Why a metric cannot be computed from these tables (missing column, null cell), or None."""
    need = spec.columns + TASK_COLUMNS.get(spec.task, ())
    for r, t in zip(run_ids, tables):
        missing = [c for c in need if not t.has(c)]
        if missing:
            return f"run {r}'s {spec.task} table lacks column(s) {', '.join(missing)}"
        counted = t.mask() > 0 if spec.masked else np.ones(len(t.frame), bool)
        for c in spec.columns:
            if c in LABEL_COLUMNS:
                continue  # no label is a value ("")
            cells = t.frame[c].isna().to_numpy() if c in TEXT_COLUMNS else np.isnan(t.num(c))
            nulls = int(cells[counted].sum())
            if nulls:
                return f"run {r}: {nulls} counted case(s) have no value in column {c}"
    return None


def _metric(spec: MetricSpec, al: Aligned, run_ids: list[str], base: int,
            cfg: StatsConfig) -> MetricStats:
    w = al.weights
    unit = stats.Weights.unit(al.codes, len(al.clusters))
    boot = np.stack([evaluate(spec, t, w) for t in al.tables])
    values = [float(evaluate(spec, t, unit)[0]) for t in al.tables]
    bias = boot.mean(axis=1) - values
    if spec.centred:
        boot = np.clip(boot - bias[:, None], *spec.bounds)
    infl = [stats.mean_influence(*spec.mean(t)) for t in al.tables] if spec.mean else []
    counted = [spec.mean(t)[1] > 0 for t in al.tables] if spec.mean else []
    df = len(al.clusters) - 1  # the t reference of a CR1 SE over G clusters
    runs: dict[str, RunStats] = {}
    for i, r in enumerate(run_ids):
        se = (stats.cr1_se(infl[i], al.codes, counted[i]) if spec.mean
              else stats.bootstrap_se(boot[i]))
        rs = RunStats(values[i], *stats.percentile_ci(boot[i], cfg.level), se,
                      boot_bias=float(bias[i]) if spec.centred else None)
        if i != base:
            d = boot[i] - boot[base]
            se_d = (stats.cr1_se(infl[i] - infl[base], al.codes, counted[i] | counted[base])
                    if spec.mean else stats.bootstrap_se(d))
            lo, hi = stats.percentile_ci(d, cfg.level)
            rs = replace(rs, delta=values[i] - values[base], delta_low=lo, delta_high=hi,
                         p_value=(stats.wald_p(values[i] - values[base], se_d, df)
                                  if cfg.p_method == "wald" else stats.bootstrap_p(d)),
                         mde=stats.mde(se_d, cfg.alpha, cfg.power, df),
                         se_delta=se_d)
        runs[r] = rs
    return MetricStats(spec.key, spec.kind, spec.direction, len(al.codes), len(al.clusters),
                       runs, boot, spec.centred)


def _wanted(cfg: StatsConfig, tasks: set[str]) -> tuple[list[str], dict[str, str]]:
    """Metric keys to compute and those listed as not resampled, for the tasks present."""
    if cfg.metrics:
        unknown = [k for k in cfg.metrics if k not in SPECS and k not in SKIPPED]
        if unknown:
            raise ValueError(f"unknown metric(s): {', '.join(unknown)}")
        return ([k for k in cfg.metrics if k in SPECS],
                {k: SKIPPED[k] for k in cfg.metrics if k in SKIPPED})
    return ([k for k, s in SPECS.items() if s.task in tasks],
            {k: v for k, v in SKIPPED.items() if k.split("/")[0] in tasks | {"run"}})


def compare_tables(runs: Tables, baseline: str, cfg: StatsConfig = StatsConfig(),
                   cases: Mapping[str, Collection[str]] | None = None) -> Comparison:
    """Every metric the tables allow, for every run, paired against `baseline` (a run id)."""
    run_ids = list(runs)
    if cfg.p_method not in P_METHODS:
        raise ValueError(f"p_method must be one of {', '.join(P_METHODS)}, not {cfg.p_method!r}")
    if cfg.adjust not in stats.ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {', '.join(stats.ADJUSTMENTS)}, "
                         f"not {cfg.adjust!r}")
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not among the runs compared")
    base = run_ids.index(baseline)
    tasks = {t for r in runs.values() for t in r}
    keys, skipped = _wanted(cfg, tasks)
    aligned: dict[str, Aligned] = {}
    left_out: dict[str, dict[str, int]] = {}
    metrics: dict[str, MetricStats] = {}
    for key in keys:
        spec = SPECS[key]
        lacking = [r for r in run_ids if spec.task not in runs[r]]
        if lacking:
            skipped[key] = f"no {spec.task} table in run(s) {', '.join(lacking)}"
            continue
        if spec.task not in aligned:
            aligned[spec.task] = align(spec.task, {r: runs[r][spec.task] for r in run_ids}, cfg,
                                       None if cases is None else cases.get(spec.task))
            left_out[spec.task] = aligned[spec.task].left_out
        al = aligned[spec.task]
        why = "no case is in every run's table" if not len(al.codes) else \
            _problem(spec, run_ids, al.tables)
        if why:
            skipped[key] = why
            continue
        metrics[key] = _metric(spec, al, run_ids, base, cfg)
    tests = [(k, r) for k, m in metrics.items() for r in run_ids if r != baseline]
    adjusted = stats.adjust_p([metrics[k].runs[r].p_value for k, r in tests], cfg.adjust)
    for (k, r), p in zip(tests, adjusted):
        metrics[k].runs[r].p_adjusted = p
    n_clusters = len(set().union(*(set(a.clusters) for a in aligned.values()))) if aligned else 0
    return Comparison(baseline, run_ids, cfg, n_clusters, metrics, skipped, left_out,
                      _notes(len(tests), cfg))


def _notes(n_tests: int, cfg: StatsConfig) -> list[str]:
    need = stats.min_resamples(n_tests, cfg.alpha, cfg.adjust)
    if n_tests and need > cfg.resamples and cfg.p_method == "bootstrap":
        lone = " (with BH: a lone effect's)" if cfg.adjust == "bh" else ""
        return [(f"the smallest p {cfg.resamples} resamples give is 1/{cfg.resamples}: adjusted "
                 f"({cfg.adjust}) over {n_tests} tests, no p{lone} can fall below alpha "
                 f"{cfg.alpha:g}; use at least {need} resamples or p_method 'wald'")]
    return []

"""Runs compared case by case: paired bootstrap intervals over the cases they share (pure).

Which metrics: those that are the mean of a per-case column of a run's logged table
(BOOTSTRAP_METRICS); others (corpus BLEU, micro P/R/F1, COCO mAP, entropy) are not means
over cases and cannot be resampled from the tables as they are.

Pairing: a metric is compared over the cases (by filename) that have a value in EVERY
compared run, in filename order, with one set of resampled case indices shared by all runs
(analysis/bootstrap.py, fixed seed), so the figures are reproducible from the tables alone.
The `value` shown is the mean over those paired cases; `logged` is the run's own metric (they
differ when the runs cover different cases). Each run's difference from the baseline run
(default: the oldest / first given) comes with its 95% interval and two-sided p-value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from nova_mlflow.analysis.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    PairedDifference,
    mean_ci,
    paired_difference,
    resample_indices,
)
from nova_mlflow.errors import InputError

#: metric key -> (task of the per-case table, column whose mean over cases is the metric).
#: Null cells (captioning cases without a reference; keyword F1 with nothing to score) are
#: left out, as scoring leaves them out of the metric.
BOOTSTRAP_METRICS: dict[str, tuple[str, str]] = {
    "localization/mAP30": ("localization", "ap30"),
    "captioning/meteor": ("captioning", "meteor"),
    "captioning/binary_accuracy": ("captioning", "binary_correct"),
    "captioning/clinical_f1_case_mean": ("captioning", "clinical_f1"),
    "captioning/modality_f1_case_mean": ("captioning", "modality_f1"),
    "diagnosis/top1": ("diagnosis", "top1"),
    "diagnosis/top5": ("diagnosis", "top5"),
}


class ValueReader(Protocol):
    """Per-case values of a run's metric ({filename: value}), or None if it has none."""

    def values(self, run_id: str, metric: str) -> dict[str, float] | None: ...


@dataclass
class MetricComparison:
    metric: str
    filenames: list[str]  # the paired cases, sorted
    values: np.ndarray  # [runs, cases] per-case values, rows in the order of Comparison.runs
    intervals: list[Interval]
    differences: list[PairedDifference | None]  # None for the baseline itself
    idx: np.ndarray  # the shared resampled indices


@dataclass
class Comparison:
    runs: list[Any]  # records with run_id, run_name, label, metrics, experiment_id
    baseline: int  # index into runs
    metrics: list[MetricComparison]
    skipped: dict[str, str] = field(default_factory=dict)
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    compare_run_id: str | None = None


# --- pure part: tables -> paired values -> statistics ------------------------------------


# --- pure part: tables -> paired values -> statistics ------------------------------------

def case_values(table: Mapping, column: str) -> dict[str, float] | None:
    """{filename: value} of one column of a logged table; None if the column is absent."""
    cols = list(table.get("columns", []))
    if column not in cols or "filename" not in cols:
        return None
    fi, ci = cols.index("filename"), cols.index(column)
    out: dict[str, float] = {}
    for row in table.get("data", []):
        v = row[ci]
        if v is None or v == "":
            continue
        x = float(v)
        if not math.isnan(x):
            out[str(row[fi])] = x  # a table logged twice appends rows: the last one wins
    return out


def paired(values: Sequence[Mapping[str, float]]) -> tuple[list[str], np.ndarray]:
    """Cases present in every mapping (sorted by filename) and the [runs, cases] matrix."""
    common = sorted(set.intersection(*(set(v) for v in values))) if values else []
    return common, np.array([[v[f] for f in common] for v in values], dtype=float).reshape(
        len(values), len(common))


def compare_values(metric: str, values: Sequence[Mapping[str, float]], baseline: int = 0,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricComparison:
    """CIs of every run and differences from `baseline`, over the cases all runs share."""
    names, m = paired(values)
    idx = resample_indices(len(names), resamples, seed)
    intervals = [mean_ci(row, idx) for row in m]
    diffs = [None if i == baseline else paired_difference(m[baseline], m[i], idx)
             for i in range(len(m))]
    return MetricComparison(metric, names, m, intervals, diffs, idx)


def parse_metric_flags(flags: Sequence[str]) -> list[str]:
    """Repeated and/or comma-separated --metric values; unknown keys are InputErrors."""
    keys = list(dict.fromkeys(k.strip() for f in flags for k in f.split(",") if k.strip()))
    bad = [k for k in keys if k not in BOOTSTRAP_METRICS]
    if bad:
        raise InputError(f"--metric {bad[0]}: not a mean over cases, so it cannot be "
                         f"bootstrapped; use one of {', '.join(BOOTSTRAP_METRICS)}")
    return keys


# --- reading runs ---------------------------------------------------------------------------

def build(runs: list[Any], baseline: int, metrics: list[str], reader: ValueReader,
          resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Comparison:
    """Compare `runs` on `metrics` (all bootstrap-able ones all runs have, if empty)."""
    requested = bool(metrics)
    comp = Comparison(runs, baseline, [], resamples=resamples, seed=seed)
    for metric in metrics or list(BOOTSTRAP_METRICS):
        values = [reader.values(r.run_id, metric) for r in runs]
        lacking = [r for r, v in zip(runs, values) if v is None]
        if lacking and not requested and len(lacking) == len(runs):
            continue  # a task none of the runs scored: nothing worth reporting
        if lacking:
            if requested:
                raise InputError(f"--metric {metric}: run {lacking[0].label} has no per-case "
                                 f"column for it")
            comp.skipped[metric] = f"not in run(s) {', '.join(r.run_id[:8] for r in lacking)}"
            continue
        mc = compare_values(metric, values, baseline, resamples, seed)  # type: ignore[arg-type]
        if not mc.filenames:
            comp.skipped[metric] = "no case has a value in every run"
            continue
        comp.metrics.append(mc)
    if not comp.metrics:
        why = "; ".join(f"{k}: {v}" for k, v in comp.skipped.items())
        raise InputError(f"nothing to compare: no metric has per-case values in every run ({why})")
    return comp


# --- views: frame, text, JSON, HTML, plots ------------------------------------------------


"""`nova-mlflow compare`: runs side by side with paired bootstrap intervals over cases.

Which metrics: those that are the mean of a per-case column of a run's logged table
(BOOTSTRAP_METRICS); others (corpus BLEU, micro P/R/F1, COCO mAP, entropy) are not means
over cases and cannot be resampled from the tables as they are.

Pairing: a metric is compared over the cases (by filename) that have a value in EVERY
compared run, in filename order, with one set of resampled case indices shared by all runs
(metrics/stats.py, fixed seed), so the figures are reproducible from the tables alone. The
`value` shown is the mean over those paired cases; `logged` is the run's own metric (they
differ when the runs cover different cases). Each run's difference from the baseline run
(default: the oldest / first given) comes with its 95% interval and two-sided p-value.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from nova_mlflow.tracking import registry as reg
from nova_mlflow.errors import InputError
from nova_mlflow.metrics.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    PairedDifference,
    mean_ci,
    paired_difference,
    resample_indices,
)
from nova_mlflow.paths import cache_dir
from nova_mlflow.tracking.registry import RunRecord

log = logging.getLogger("nova_mlflow")

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
DEFAULT_EXPERIMENT = "nova-demo"  # where `nova-mlflow run` logs by default
SKIP_KINDS = {"compare", "gate"}  # runs made by these commands hold no per-case tables


class CompareConfig(BaseModel):
    """The flags of `nova-mlflow compare`; extra="forbid" so a typo fails loudly."""

    model_config = ConfigDict(extra="forbid")

    experiment: str | None = None
    runs: list[str] = Field(default_factory=list)
    baseline: str | None = None
    metrics: list[str] = Field(default_factory=list)
    log: bool = True
    resamples: int = Field(DEFAULT_RESAMPLES, ge=100, le=100_000)
    seed: int = DEFAULT_SEED


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
    runs: list[RunRecord]
    baseline: int  # index into runs
    metrics: list[MetricComparison]
    skipped: dict[str, str] = field(default_factory=dict)
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    compare_run_id: str | None = None


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

class TableReader:
    """Per-case values of runs, downloading each (run, task) table once."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], dict | None] = {}

    def values(self, run_id: str, metric: str) -> dict[str, float] | None:
        task, column = BOOTSTRAP_METRICS[metric]
        key = (run_id, task)
        if key not in self._tables:
            self._tables[key] = reg.download_table(run_id, task)
        table = self._tables[key]
        return None if table is None else case_values(table, column)


def select_runs(cfg: CompareConfig) -> tuple[list[RunRecord], int]:
    """The runs to compare and the index of the baseline among them."""
    if cfg.runs:
        runs = [reg.get_run(r) for r in dict.fromkeys(cfg.runs)]
        for r in runs:
            if not reg.table_tasks(r.run_id):
                raise InputError(f"--run {r.run_id}: run {r.label} has no per-case tables "
                                 "(tables/*_cases.json): a sweep parent or a failed run?")
    else:
        name = cfg.experiment or DEFAULT_EXPERIMENT
        _, found = reg.experiment_runs(name)
        runs = [r for r in found if r.tags.get("nova.sweep") != "parent"
                and r.tags.get("nova.kind") not in SKIP_KINDS and reg.table_tasks(r.run_id)]
        if not runs:
            raise InputError(f"--experiment {name!r}: no finished run with per-case tables")
    if cfg.baseline is None:
        return runs, 0
    ids = [r.run_id for r in runs]
    if cfg.baseline in ids:
        return runs, ids.index(cfg.baseline)
    return [reg.get_run(cfg.baseline), *runs], 0


def build(runs: list[RunRecord], baseline: int, metrics: list[str], reader: TableReader,
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

def _rows(comp: Comparison, mc: MetricComparison) -> list[dict]:
    """One dict per run for one metric; fractions as in MLflow, None where not applicable."""
    rows = []
    for run, ci, d in zip(comp.runs, mc.intervals, mc.differences):
        rows.append({
            "metric": mc.metric, "run_id": run.run_id, "run_name": run.run_name,
            "baseline": run.run_id == comp.runs[comp.baseline].run_id,
            "n_cases": len(mc.filenames), "value": ci.value, "ci_low": ci.low,
            "ci_high": ci.high, "logged": run.metrics.get(mc.metric),
            "delta": d.delta if d else None, "delta_low": d.low if d else None,
            "delta_high": d.high if d else None, "p_value": d.p_value if d else None})
    return rows


def to_frame(comp: Comparison) -> pd.DataFrame:
    """One row per metric x run (the CSV, for scripts)."""
    return pd.DataFrame([row for mc in comp.metrics for row in _rows(comp, mc)])


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def text_table(comp: Comparison) -> str:
    """Readable summary for stderr: percent values, percentage-point differences."""
    head = ("metric", "run", "n", "value", "95% CI", "delta", "95% CI", "p")
    body = []
    for mc in comp.metrics:
        for i, (run, ci, d) in enumerate(zip(comp.runs, mc.intervals, mc.differences)):
            body.append((mc.metric if i == 0 else "", run.label, str(len(mc.filenames)),
                         _pct(ci.value), f"[{_pct(ci.low)}, {_pct(ci.high)}]",
                         _pts(d.delta) if d else "baseline",
                         f"[{_pts(d.low)}, {_pts(d.high)}]" if d else "",
                         f"{d.p_value:.4f}" if d else ""))
    w = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = "  ".join("-" * x for x in w)
    out = [(f"Comparison: paired bootstrap over shared cases ({comp.resamples} resamples, seed "
            f"{comp.seed}); baseline {comp.runs[comp.baseline].label}"),
           "  ".join(h.ljust(x) for h, x in zip(head, w)), line]
    out += ["  ".join(c.ljust(x) if j < 2 else c.rjust(x) for j, (c, x) in enumerate(zip(r, w)))
            for r in body]
    out.append("Values in percent; delta in percentage points vs the baseline; p two-sided.")
    out += [f"skipped {k}: {v}" for k, v in comp.skipped.items()]
    return "\n".join(out)


def to_json(comp: Comparison) -> dict:
    """The --json object: per metric, per run id, value/CI/logged and delta/CI/p (or null)."""
    keys = ("value", "ci_low", "ci_high", "logged", "delta", "delta_low", "delta_high", "p_value")
    return {
        "baseline_run_id": comp.runs[comp.baseline].run_id,
        "runs": [{"run_id": r.run_id, "run_name": r.run_name} for r in comp.runs],
        "resamples": comp.resamples, "seed": comp.seed, "skipped": comp.skipped,
        "compare_run_id": comp.compare_run_id,
        "metrics": {mc.metric: {"n_cases": len(mc.filenames),
                                "runs": {r["run_id"]: {k: r[k] for k in keys}
                                         for r in _rows(comp, mc)}}
                    for mc in comp.metrics},
    }


def write_html(comp: Comparison, path: Path) -> Path:
    """The comparison as one HTML page (percent values), for the MLflow artifact viewer."""
    cols = ["metric", "run", "n_cases", "value", "95% CI", "logged", "delta vs baseline",
            "95% CI of delta", "p"]
    rows = []
    for r in (row for mc in comp.metrics for row in _rows(comp, mc)):
        d = r["delta"] is not None
        cells = [r["metric"], f"{r['run_name']} ({r['run_id'][:8]})", r["n_cases"],
                 _pct(r["value"]), f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
                 "" if r["logged"] is None else _pct(r["logged"]),
                 _pts(r["delta"]) if d else "baseline",
                 f"[{_pts(r['delta_low'])}, {_pts(r['delta_high'])}]" if d else "",
                 f"{r['p_value']:.4f}" if d else ""]
        cls = ' class="base"' if r["baseline"] else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    title = f"Run comparison (baseline {comp.runs[comp.baseline].label})"
    notes = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in comp.skipped.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>body{{font-family:system-ui,sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}"
        "tr.base{font-weight:bold}</style>"
        f"<h1>{escape(title)}</h1><table><thead><tr>"
        + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
        f"<p>Values in percent over the cases every run shares (paired by filename); `logged` "
        f"is the run's own metric. Intervals: percentile bootstrap, {comp.resamples} resamples, "
        f"seed {comp.seed}; p: two-sided paired bootstrap test of no difference.</p>"
        + (f"<p>Skipped:</p><ul>{notes}</ul>" if notes else ""), encoding="utf-8")
    return path


def plot_metric(comp: Comparison, mc: MetricComparison, path: Path) -> Path:
    """Left: each run's value with its 95% CI. Right: the bootstrap distribution of each
    run's difference from the baseline (violin), its 95% CI and p; 0 = no difference."""
    from nova_mlflow.plots import OURS, PAPER, new_figure, save

    n = len(comp.runs)
    ncols = 2 if n > 1 else 1
    fig, axes = new_figure(ncols=ncols, width=5.0, height=max(2.4, 0.55 * n + 1.4))
    labels = [r.label for r in comp.runs]
    ax = axes[0][0]
    for i, ci in enumerate(mc.intervals):
        color = PAPER if i == comp.baseline else OURS
        ax.errorbar([100 * ci.value], [i], xerr=[[100 * (ci.value - ci.low)],
                                                 [100 * (ci.high - ci.value)]],
                    fmt="o", color=color, capsize=3)
    ax.set_yticks(range(n), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"{mc.metric} (%)")
    ax.set_title(f"{mc.metric}: 95% CI over {len(mc.filenames)} paired cases")
    if ncols == 2:
        ax2 = axes[0][1]
        others = [i for i in range(n) if i != comp.baseline]
        boots = [100 * (mc.values[i] - mc.values[comp.baseline])[mc.idx].mean(axis=1)
                 for i in others]
        if all(np.ptp(b) > 0 for b in boots):
            ax2.violinplot(boots, positions=range(len(others)), vert=False, showextrema=False)
        for pos, i in enumerate(others):
            d = mc.differences[i]
            assert d is not None
            ax2.errorbar([100 * d.delta], [pos], xerr=[[100 * (d.delta - d.low)],
                                                       [100 * (d.high - d.delta)]],
                         fmt="o", color=OURS, capsize=3)
            ax2.annotate(f"p={d.p_value:.3g}", (100 * d.high, pos), xytext=(4, 4),
                         textcoords="offset points", fontsize=8)
        ax2.axvline(0, color=PAPER, linestyle="--", linewidth=1)
        ax2.set_yticks(range(len(others)), [labels[i] for i in others])
        ax2.invert_yaxis()
        ax2.set_xlabel("difference from baseline (percentage points)")
        ax2.set_title(f"vs {labels[comp.baseline]}: bootstrap distribution")
    return save(fig, path)


# --- the command ----------------------------------------------------------------------------

def write_files(comp: Comparison, out_dir: Path) -> list[tuple[Path, str]]:
    """CSV, HTML, JSON and one plot per metric; (path, artifact dir) pairs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "comparison.csv"
    to_frame(comp).to_csv(csv, index=False)
    js = out_dir / "comparison.json"
    js.write_text(json.dumps(to_json(comp), indent=1, sort_keys=True), encoding="utf-8")
    files = [(csv, "compare"), (write_html(comp, out_dir / "comparison.html"), "compare"),
             (js, "compare")]
    for mc in comp.metrics:
        png = out_dir / "plots" / f"{mc.metric.replace('/', '_')}.png"
        files.append((plot_metric(comp, mc, png), "compare/plots"))
    return files


def run_compare(cfg: CompareConfig) -> Comparison:
    """Select, compute, print (stderr), and log a run tagged nova.kind=compare (unless --no-log)."""
    metrics = parse_metric_flags(cfg.metrics)
    runs, baseline = select_runs(cfg)
    comp = build(runs, baseline, metrics, TableReader(), cfg.resamples, cfg.seed)
    log.info("\n%s", text_table(comp))
    if cfg.log:
        base = comp.runs[comp.baseline]
        with tempfile.TemporaryDirectory(prefix="nova-compare-", dir=_tmp_root()) as tmp:
            files = write_files(comp, Path(tmp))
            comp.compare_run_id = reg.log_run(
                base.experiment_id, f"compare {len(runs)} runs vs {base.run_name or base.run_id[:8]}",
                files, {"nova.kind": "compare", "nova.baseline_run": base.run_id,
                        "nova.compared_runs": ",".join(r.run_id for r in comp.runs)},
                {"baseline_run_id": base.run_id, "metrics": ",".join(m.metric for m in comp.metrics),
                 "resamples": comp.resamples, "seed": comp.seed})
        log.info("comparison logged as run %s", comp.compare_run_id)
    return comp


def _tmp_root() -> Path:
    d = cache_dir() / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d

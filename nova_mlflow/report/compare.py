"""A comparison for people and scripts: text table, CSV, JSON, HTML page, one plot per metric."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from nova_mlflow.analysis.compare import Comparison, MetricComparison


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
    from nova_mlflow.report.plots import OURS, PAPER, new_figure, save

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



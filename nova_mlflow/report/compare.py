"""A comparison for people and scripts: text table, CSV, JSON, HTML, a paired plot per metric
and a forest plot of every delta. Reads the comparison (analysis/comparison.py); computes
nothing of its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd

from nova_mlflow.analysis.comparison import Comparison, RunStats
from nova_mlflow.report.tables import fmt, is_raw


@dataclass
class CompareResult:
    """A comparison with what the views show of its runs: names, their own logged metrics,
    what differed between them (--allow-mismatch) and the comparison run logged (if any)."""

    comparison: Comparison
    names: dict[str, str]  # run id -> run name
    logged: dict[str, dict[str, float]] = field(default_factory=dict)  # run id -> metrics
    mismatches: list[str] = field(default_factory=list)
    compare_run_id: str | None = None

    @property
    def baseline(self) -> str:
        return self.comparison.baseline

    def label(self, run_id: str) -> str:
        return f"{self.names.get(run_id) or '(unnamed)'} ({run_id[:8]})"

    def to_json(self) -> dict:
        """The `compare --json` object (docs: interface.md): the comparison's keys, each
        run's own logged metric as `logged`, run names, mismatches, the comparison run."""
        out = self.comparison.to_json()
        out["runs"] = [{"run_id": r, "run_name": self.names.get(r, "")}
                       for r in self.comparison.run_ids]
        for key, m in out["metrics"].items():
            for r, s in m["runs"].items():
                s["logged"] = self.logged.get(r, {}).get(key)
        out["mismatches"] = list(self.mismatches)
        out["compare_run_id"] = self.compare_run_id
        return out


def fmt_delta(key: str, x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:+.2f}" if is_raw(key) else f"{100 * x:+.2f}"


def _p(x: float | None) -> str:
    return "" if x is None else f"{x:.2g}" if x < 1e-3 else f"{x:.4f}"


def rows(res: CompareResult) -> list[dict]:
    """One dict per metric x run (the CSV): fractions as in MLflow, None where not applicable."""
    out = []
    for key, ms in res.comparison.metrics.items():
        for r, s in ms.runs.items():
            out.append({"metric": key, "run_id": r, "run_name": res.names.get(r, ""),
                        "baseline": r == res.baseline, "kind": ms.kind, "n_cases": ms.n_cases,
                        "n_clusters": ms.n_clusters, "value": s.value, "ci_low": s.ci_low,
                        "ci_high": s.ci_high, "se": s.se, "logged": res.logged.get(r, {}).get(key),
                        "delta": s.delta, "delta_low": s.delta_low, "delta_high": s.delta_high,
                        "p_value": s.p_value, "p_adjusted": s.p_adjusted, "mde": s.mde})
    return out


def _cells(key: str, s: RunStats, label: str, first: bool, n: int) -> tuple[str, ...]:
    base = s.delta is None
    return (key if first else "", label, str(n), fmt(key, s.value),
            f"[{fmt(key, s.ci_low)}, {fmt(key, s.ci_high)}]", fmt_delta(key, s.se).lstrip("+"),
            "baseline" if base else fmt_delta(key, s.delta),
            "" if base else f"[{fmt_delta(key, s.delta_low)}, {fmt_delta(key, s.delta_high)}]",
            _p(s.p_value), _p(s.p_adjusted), fmt_delta(key, s.mde).lstrip("+"))


HEAD = ("metric", "run", "n", "value", "95% CI", "se", "delta", "95% CI", "p", "p adj", "mde")


def method_lines(res: CompareResult) -> list[str]:
    """How every figure was computed, and what was left out, in sentences."""
    c = res.comparison
    cfg = c.config
    js = c.to_json()
    n_tests = sum(len(m.runs) - 1 for m in c.metrics.values())
    out = [(f"Resampling unit: the patient case ({js['cluster']}), {c.n_clusters} cases; "
            f"{cfg.resamples} paired resamples (seed {cfg.seed}), the same draws for every run."),
           (f"Intervals: {js['ci_method']}; se: CR1 cluster-robust for means over cases, the "
            "bootstrap SD otherwise."),
           (f"p: {js['p_method_text']}; adjusted ({cfg.adjust}) over all {n_tests} metric x "
            f"run tests; mde: the difference found with {cfg.power:.0%} power at alpha "
            f"{cfg.alpha:g}."),
           ("Values in percent (counts, bits and words as they are); delta = run - baseline, "
            "in percentage points.")]
    for task, runs in c.left_out.items():
        out += [f"left out: {n} {task} case(s) of {res.label(r)} not in every run's table"
                for r, n in runs.items() if n]
    out += [f"not comparable, compared anyway: {m}" for m in res.mismatches]
    out += [f"note: {n}" for n in c.notes]
    by_reason: dict[str, list[str]] = {}
    for key, why in c.skipped.items():
        by_reason.setdefault(why, []).append(key)
    out += [f"not compared ({why}): {', '.join(keys)}" for why, keys in by_reason.items()]
    return out


def text_table(res: CompareResult) -> str:
    """Readable summary for stderr."""
    body = [_cells(key, s, res.label(r), i == 0, ms.n_cases)
            for key, ms in res.comparison.metrics.items()
            for i, (r, s) in enumerate(ms.runs.items())]
    w = [max(len(r[i]) for r in [HEAD, *body]) for i in range(len(HEAD))]
    out = [f"Comparison: case-clustered paired bootstrap; baseline {res.label(res.baseline)}",
           "  ".join(h.ljust(x) for h, x in zip(HEAD, w)), "  ".join("-" * x for x in w)]
    out += ["  ".join(c.ljust(x) if j < 2 else c.rjust(x) for j, (c, x) in enumerate(zip(r, w)))
            for r in body]
    return "\n".join(out + method_lines(res))


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def html_section(res: CompareResult, figures: Sequence[Path] = ()) -> str:
    """The comparison as an HTML fragment: the table, the method, then the figures given."""
    trs = []
    for key, ms in res.comparison.metrics.items():
        for i, (r, s) in enumerate(ms.runs.items()):
            cls = ' class="base"' if r == res.baseline else ""
            trs.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in _cells(
                key, s, res.label(r), i == 0, ms.n_cases)) + "</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in HEAD)
    notes = "".join(f"<li>{escape(x)}</li>" for x in method_lines(res))
    return (f"<table class='compare'><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}"
            f"</tbody></table><ul class='meta'>{notes}</ul>" + "".join(_img(f) for f in figures))


def write_html(res: CompareResult, path: Path, figures: Sequence[Path]) -> Path:
    """The comparison as one self-contained HTML page (figures embedded)."""
    title = f"Run comparison (baseline {res.label(res.baseline)})"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title><style>{CSS}</style>"
        f"<h1>{escape(title)}</h1>{html_section(res, figures)}", encoding="utf-8")
    return path


CSS = ("body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "td:nth-child(-n+2){text-align:left}tr.base{font-weight:bold}.meta{color:#555}"
       "img{max-width:100%;border:1px solid #eee;margin:.5em 0}")


def write_files(res: CompareResult, out_dir: Path) -> list[tuple[Path, str]]:
    """CSV, JSON, the forest plot, a paired plot per metric and the HTML page (forest plot
    embedded); (path, artifact dir) pairs."""
    from nova_mlflow.report.plots.compare import plot_forest, plot_metric

    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "comparison.csv"
    pd.DataFrame(rows(res)).to_csv(csv, index=False)
    js = out_dir / "comparison.json"
    js.write_text(json.dumps(res.to_json(), indent=1, sort_keys=True), encoding="utf-8")
    files = [(csv, "compare"), (js, "compare")]
    comp = res.comparison
    labels = {r: res.label(r) for r in comp.run_ids}
    forest = plot_forest(comp, labels, out_dir / "forest.png") if comp.metrics else None
    if forest is not None:
        files.append((forest, "compare"))
    files.append((write_html(res, out_dir / "comparison.html", [forest] if forest else []),
                  "compare"))
    for key, ms in comp.metrics.items():
        png = out_dir / "plots" / f"{key.replace('/', '_')}.png"
        files.append((plot_metric(comp, ms, labels, png), "compare/plots"))
    return files

"""Figures of a comparison: per metric, each run's value and its paired delta draws; across
all metrics, a forest plot of every run's delta from the baseline with its 95% CI.

Fractions are drawn in percent (deltas in percentage points); counts, bits and words in
their own units, in a panel of their own in the forest plot.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nova_mlflow.analysis.comparison import Comparison, MetricStats
from nova_mlflow.report.plots import OURS, PAPER, new_figure, save
from nova_mlflow.report.tables import is_raw

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


def _scale(key: str) -> float:
    return 1.0 if is_raw(key) else 100.0


def plot_metric(comp: Comparison, ms: MetricStats, labels: Mapping[str, str], path: Path) -> Path:
    """One row per run. Left: its value with the 95% CI. Right: the paired bootstrap draws of
    its difference from the baseline (violin), the delta's 95% CI and adjusted p; 0 = no
    difference."""
    k = _scale(ms.key)
    ids = list(ms.runs)
    n = len(ids)
    ncols = 2 if n > 1 else 1
    fig, axes = new_figure(ncols=ncols, width=4.2, height=max(1.6, 0.42 * n + 1.0), sharey=True)
    ax = axes[0][0]
    for i, r in enumerate(ids):
        s = ms.runs[r]
        ax.errorbar([k * s.value], [i], xerr=[[k * (s.value - s.ci_low)], [k * (s.ci_high - s.value)]],
                    fmt="o", color=PAPER if r == comp.baseline else OURS, capsize=3)
    ax.set_yticks(range(n), [labels[r] for r in ids])
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"{ms.key}{' (%)' if k == 100 else ''}")
    ax.set_title(f"95% CI: {ms.n_cases} slices, {ms.n_clusters} cases", fontsize=9)
    if ncols == 2:
        ax2 = axes[0][1]
        rows = [i for i, r in enumerate(ids) if r != comp.baseline]
        base = ids.index(comp.baseline)
        draws = [k * (ms.boot[i] - ms.boot[base]) for i in rows]
        if all(np.ptp(d) > 0 for d in draws):
            ax2.violinplot(draws, positions=rows, orientation="horizontal", showextrema=False)
        for i in rows:
            s = ms.runs[ids[i]]
            assert s.delta is not None and s.delta_low is not None and s.delta_high is not None
            ax2.errorbar([k * s.delta], [i], xerr=[[k * (s.delta - s.delta_low)],
                                                   [k * (s.delta_high - s.delta)]],
                         fmt="o", color=OURS, capsize=3)
            ax2.annotate(f"p adj {s.p_adjusted:.2g}", (k * s.delta_high, i), xytext=(3, 3),
                         textcoords="offset points", fontsize=7)
        ax2.annotate("baseline", (0, base), ha="center", va="center", fontsize=8, color=PAPER)
        ax2.axvline(0, color=PAPER, linestyle="--", linewidth=1)
        ax2.set_xlabel("delta vs baseline" + (" (points)" if k == 100 else ""))
        ax2.set_title("paired draws", fontsize=9)
        fig.subplots_adjust(wspace=0.08)
    return save(fig, path, crop=True)


def plot_forest(comp: Comparison, labels: Mapping[str, str], path: Path) -> Path:
    """Every metric's delta (run - baseline) with its 95% CI, one row per metric, one marker
    per run; filled when the adjusted p is below alpha, hollow otherwise. Fractions share one
    panel (percentage points); each count, bits or words metric has a panel of its own."""
    others = [r for r in comp.run_ids if r != comp.baseline]
    fractions = [key for key in comp.metrics if _scale(key) == 100]
    panels = ([fractions] if fractions else []) + [[key] for key in comp.metrics
                                                   if _scale(key) != 100]
    row_h = 0.12 + 0.07 * len(others)  # inches per metric row
    heights = [row_h * len(keys) + 0.25 for keys in panels]
    fig, axes = new_figure(nrows=len(panels), width=7.5, height=1.0,
                           gridspec_kw={"height_ratios": heights})
    fig.set_size_inches(7.5, sum(heights) + 0.55 * len(panels) + 0.6)
    step = 0.8 / max(1, len(others))
    for keys, ax in zip(panels, (row[0] for row in axes)):
        for j, r in enumerate(others):
            color = COLORS[j % len(COLORS)]
            for row, key in enumerate(keys):
                s, k = comp.metrics[key].runs[r], _scale(key)
                if s.delta is None or s.delta_low is None or s.delta_high is None:
                    continue
                solid = s.p_adjusted is not None and s.p_adjusted < comp.config.alpha
                ax.errorbar([k * s.delta], [row - 0.4 + step * (j + 0.5)],
                            xerr=[[k * (s.delta - s.delta_low)], [k * (s.delta_high - s.delta)]],
                            fmt="o", color=color, mfc=color if solid else "white", capsize=2,
                            markersize=4, linewidth=1,
                            label=labels[r] if row == 0 and ax is axes[0][0] else None)
        ax.axvline(0, color=PAPER, linestyle="--", linewidth=1)
        ax.set_yticks(range(len(keys)), keys)
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.tick_params(axis="both", labelsize=8)
    axes[0][0].set_xlabel("percentage points" if fractions else "", fontsize=8)
    axes[0][0].set_title(f"Delta vs {labels[comp.baseline]}, 95% CI; filled: adjusted p < "
                         f"{comp.config.alpha:g} ({comp.config.adjust})", fontsize=10)
    if others:
        axes[0][0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.subplots_adjust(hspace=0.6 / (sum(heights) / len(heights)))  # ~0.6 in between panels
    return save(fig, path, crop=True)

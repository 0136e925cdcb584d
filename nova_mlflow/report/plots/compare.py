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
    """Left: each run's value with its 95% CI. Right: the paired bootstrap draws of each run's
    difference from the baseline (violin), its 95% CI and adjusted p; 0 = no difference."""
    k = _scale(ms.key)
    ids = list(ms.runs)
    base = ids.index(comp.baseline)
    n = len(ids)
    ncols = 2 if n > 1 else 1
    fig, axes = new_figure(ncols=ncols, width=5.0, height=max(2.4, 0.55 * n + 1.4))
    ax = axes[0][0]
    for i, r in enumerate(ids):
        s = ms.runs[r]
        ax.errorbar([k * s.value], [i], xerr=[[k * (s.value - s.ci_low)], [k * (s.ci_high - s.value)]],
                    fmt="o", color=PAPER if i == base else OURS, capsize=3)
    ax.set_yticks(range(n), [labels[r] for r in ids])
    ax.invert_yaxis()
    ax.set_xlabel(f"{ms.key} ({'%' if k == 100 else 'value'})")
    ax.set_title(f"95% CI, {ms.n_cases} slices in {ms.n_clusters} cases")
    if ncols == 2:
        ax2 = axes[0][1]
        others = [i for i in range(n) if i != base]
        draws = [k * (ms.boot[i] - ms.boot[base]) for i in others]
        if all(np.ptp(d) > 0 for d in draws):
            ax2.violinplot(draws, positions=range(len(others)), orientation="horizontal",
                           showextrema=False)
        for pos, i in enumerate(others):
            s = ms.runs[ids[i]]
            assert s.delta is not None and s.delta_low is not None and s.delta_high is not None
            ax2.errorbar([k * s.delta], [pos], xerr=[[k * (s.delta - s.delta_low)],
                                                     [k * (s.delta_high - s.delta)]],
                         fmt="o", color=OURS, capsize=3)
            ax2.annotate(f"p adj={s.p_adjusted:.2g}", (k * s.delta_high, pos), xytext=(4, 4),
                         textcoords="offset points", fontsize=8)
        ax2.axvline(0, color=PAPER, linestyle="--", linewidth=1)
        ax2.set_yticks(range(len(others)), [labels[ids[i]] for i in others])
        ax2.invert_yaxis()
        ax2.set_xlabel("difference from baseline" + (" (percentage points)" if k == 100 else ""))
        ax2.set_title(f"vs {labels[comp.baseline]}: paired draws")
    return save(fig, path)


def plot_forest(comp: Comparison, labels: Mapping[str, str], path: Path) -> Path:
    """Every metric's delta (run - baseline) with its 95% CI, one row per metric, one marker
    per run; filled when the adjusted p is below alpha, hollow otherwise."""
    others = [r for r in comp.run_ids if r != comp.baseline]
    keys = list(comp.metrics)
    panels = [(name, [key for key in keys if (_scale(key) == 100) == frac])
              for name, frac in (("fractions: percentage points", True),
                                 ("counts, bits, words", False))]
    panels = [(name, ks) for name, ks in panels if ks]
    heights = [max(1.2, 0.32 * len(ks) + 0.8) for _, ks in panels]
    fig, axes = new_figure(nrows=len(panels), width=7.5, height=max(heights))
    fig.set_size_inches(7.5, sum(heights) + 0.6)
    step = 0.7 / max(1, len(others))
    for (name, ks), ax in zip(panels, (row[0] for row in axes)):
        for j, r in enumerate(others):
            color = COLORS[j % len(COLORS)]
            for row, key in enumerate(ks):
                s, k = comp.metrics[key].runs[r], _scale(key)
                if s.delta is None or s.delta_low is None or s.delta_high is None:
                    continue
                y = row - 0.35 + step * (j + 0.5)
                solid = s.p_adjusted is not None and s.p_adjusted < comp.config.alpha
                ax.errorbar([k * s.delta], [y], xerr=[[k * (s.delta - s.delta_low)],
                                                      [k * (s.delta_high - s.delta)]],
                            fmt="o", color=color, mfc=color if solid else "white", capsize=2,
                            markersize=4, label=labels[r] if row == 0 else None)
        ax.axvline(0, color=PAPER, linestyle="--", linewidth=1)
        ax.set_yticks(range(len(ks)), ks)
        ax.set_ylim(len(ks) - 0.5, -0.5)
        ax.set_xlabel(f"delta vs {labels[comp.baseline]} ({name})")
    axes[0][0].set_title(f"Paired deltas, 95% CI; filled: adjusted p < {comp.config.alpha:g} "
                         f"({comp.config.adjust})")
    if others:
        axes[0][0].legend(fontsize=7, loc="best")
    return save(fig, path)

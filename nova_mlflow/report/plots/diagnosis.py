"""Figure 6 (diagnostic reasoning): how the predicted diagnoses spread over labels.

Left: rank-frequency on log-log axes (a steep, short curve = a model that keeps naming the
same few diagnoses; the ground truth is long and flat). Right: cumulative share of cases
covered by the k most frequent labels. Inputs are plain label counts (from the run's
label-frequency table), so the figure can be redrawn from a logged run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from nova_mlflow.report.plots import (GOLD, PRED, Margins, headline, lay_out, new_figure,
                                      save)


def _sorted_counts(counts: Sequence[int]) -> np.ndarray:
    c = np.asarray([int(x) for x in counts if int(x) > 0], dtype=float)
    return np.sort(c)[::-1]


def figure6(pred_counts: Sequence[int], gt_counts: Sequence[int], path: Path, model: str,
            entropy: tuple[float, float], top_predicted: Sequence[tuple[str, int]] = ()) -> Path:
    """Rank-frequency (log-log) and cumulative-frequency curves, predictions vs ground truth.

    entropy: (predictions, ground truth), in bits. top_predicted: the most frequent
    predicted labels with counts, named in the left panel
    (which diagnoses a model over-uses is the first question the curve raises).
    """
    pred, gt = _sorted_counts(pred_counts), _sorted_counts(gt_counts)
    fig, axes = new_figure(ncols=2, width=5.6, height=4.2)
    left, right = axes[0]
    series = [(gt, GOLD, "ground truth", entropy[1], "o"), (pred, PRED, model, entropy[0], "s")]
    for counts, color, name, h, marker in series:
        if counts.size == 0:
            continue
        ranks = np.arange(1, counts.size + 1)
        label = f"{name}: {counts.size} labels, H = {h:.2f} bits"
        left.loglog(ranks, counts, marker=marker, markersize=3, linewidth=1.4, color=color,
                    alpha=0.9, label=label)
        cum = 100 * np.cumsum(counts) / counts.sum()
        right.plot(ranks, cum, color=color, linewidth=1.8, label=name)
        k = min(10, counts.size)
        right.annotate(f"top {k}: {cum[k - 1]:.0f}%", (k, cum[k - 1]), textcoords="offset points",
                       xytext=(8, -12 if color == GOLD else 6), color=color, fontsize=8)
        right.plot([k], [cum[k - 1]], marker="o", color=color, markersize=4)
    if top_predicted:
        lines = [f"{n:>4} × {lab[:38] + ('…' if len(lab) > 38 else '')}"
                 for lab, n in list(top_predicted)[:3]]
        left.text(0.03, 0.04, "most frequent predictions:\n" + "\n".join(lines),
                  transform=left.transAxes, fontsize=7.5, color=PRED, va="bottom",
                  family="monospace")
    if pred.size == 0:
        left.text(0.5, 0.5, "no predictions", transform=left.transAxes, ha="center",
                  color=PRED)
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # "6", not "6x10^0"
    top = max([1.0] + [float(c[0]) for c, *_ in series if c.size])
    n = max([1] + [c.size for c, *_ in series])
    for axis, span in ((left.xaxis, n), (left.yaxis, top)):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain if span < 10 else NullFormatter())
    left.set_xlabel("label rank (most frequent = 1)")
    left.set_ylabel("cases with this label")
    left.set_title("Rank-frequency of diagnoses (log-log)")
    left.legend(fontsize=8, loc="upper right", frameon=False)
    right.set_xlabel("number of most frequent labels")
    right.set_ylabel("cumulative share of cases (%)")
    right.set_ylim(0, 102)
    right.set_xlim(left=0)
    right.set_title("Cumulative frequency")
    right.legend(fontsize=8, loc="lower right", frameon=False)
    lay_out(fig, Margins(left=0.75, bottom=0.55, head=0.65), wgap=0.85)  # ticks, labels, titles
    headline(fig, "Figure 6: predicted (top-1) vs ground-truth diagnoses", fontsize=11)
    return save(fig, Path(path))

"""Figure 4 (anomaly localization): boxes over the image, best-IoU histogram, split bar charts.

Inputs are the per-case table of scoring/localization.py (and the cases, for images and gold
boxes), so a figure can be redrawn from a logged run without re-scoring. Images are decoded
one at a time, only for the handful of cases shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch, Rectangle

from nova_mlflow.data.images import load_gray
from nova_mlflow.errors import InputError
from nova_mlflow.report.plots import (GOLD, OURS, PAPER, PRED, Margins, headline, lay_out,
                                      new_figure, save)
from nova_mlflow.schemas import Case

SPLIT_TITLES = {"plane": "By imaging plane (read from the caption)",
                "n_gold_group": "By number of gold boxes",
                "size_class": "By lesion size (largest gold box)"}
HIT30 = "#ff7f0e"
SPLIT_NOTES = {"size_class": "small < 64² px, medium < 128² px, large ≥ 128² px"}


def _image(case: Case) -> np.ndarray | None:
    try:
        return load_gray(case.image_path)
    except InputError:  # e.g. a metadata-only dataset: draw the boxes on a blank slice
        return None


def _draw_boxes(ax, boxes: list[list[float]], color: str, style: str) -> None:
    for x1, y1, x2, y2 in boxes:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                               linewidth=2.0, linestyle=style))


def examples(sample: list[tuple[str, list[tuple[Case, dict]]]], path: Path, label: str) -> Path:
    """Grid: one row per group (best / median / worst), ground truth green, predictions red."""
    ncols = max((len(items) for _, items in sample), default=1)
    nrows = max(len(sample), 1)
    fig, axes = new_figure(ncols, nrows, width=3.6, height=4.3)
    for ax in axes.flat:
        ax.axis("off")
    if not sample:
        axes[0, 0].text(0.5, 0.5, "no cases", ha="center", va="center")
    for r, (group, items) in enumerate(sample):
        for c, (case, row) in enumerate(items):
            ax = axes[r, c]
            img = _image(case)
            w, h = case.image_width, case.image_height
            if img is None:
                ax.imshow(np.zeros((h, w)), cmap="gray", vmin=0, vmax=1)
                ax.text(w / 2, h * 0.97, "image not available", color="#bbbbbb", ha="center",
                        va="bottom", fontsize=8)
            else:
                ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            _draw_boxes(ax, [b.as_list() for b in case.gold_boxes], GOLD, "-")
            _draw_boxes(ax, json.loads(row["pred_boxes"]), PRED, "--")
            ax.set_title(f"{case.filename}\nbest IoU {row['best_iou']:.2f} · AP30 {row['ap30']:.2f}\n"
                         f"gold {row['n_gold']} · pred {row['n_pred']} · hit@0.3 {row['detected30']}",
                         fontsize=9)
            if c == 0:
                ax.text(-0.06, 0.5, group.upper(), transform=ax.transAxes, rotation=90,
                        ha="right", va="center", fontsize=12, fontweight="bold")
    # three title lines above each slice, the row's name left of it, the legend below
    lay_out(fig, Margins(left=0.45, bottom=0.35, head=0.95, right=0.05), wgap=0.15, hgap=0.6)
    headline(fig, f"Figure 4a · {label}: best, median and worst cases by AP@0.3, then best IoU",
             fontsize=12)
    fig.legend(handles=[Patch(edgecolor=GOLD, fill=False, linewidth=2, label="ground truth"),
                        Patch(edgecolor=PRED, fill=False, linewidth=2, linestyle="--",
                              label="prediction")],
               loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return save(fig, path)


def iou_histogram(table: pd.DataFrame, path: Path, label: str) -> Path:
    """Best IoU per case that has a predicted box; cases without one are counted, not binned."""
    fig, axes = new_figure(1, 1, width=7.0, height=4.2)
    ax = axes[0, 0]
    has_box = table[table["n_pred"] > 0]
    ious = has_box["best_iou"].to_numpy(dtype=float)
    n_none = int((table["n_pred"] == 0).sum())
    bins = np.linspace(0, 1, 21)
    if ious.size:
        counts, edges = np.histogram(ious, bins=bins)
        colors = [PAPER if lo < 0.3 else HIT30 if lo < 0.5 else GOLD for lo in edges[:-1]]
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colors,
               edgecolor="white")
        ax.legend(handles=[Patch(color=PAPER, label="miss (< 0.3)"),
                           Patch(color=HIT30, label="hit at 0.3 only"),
                           Patch(color=GOLD, label="hit at 0.5")],
                  loc="upper right", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no predicted boxes in this run", transform=ax.transAxes,
                ha="center", va="center")
    for t, name in ((0.3, "IoU 0.3"), (0.5, "IoU 0.5")):
        ax.axvline(t, color="black", linestyle="--", linewidth=1)
        share = float((ious >= t).mean()) if ious.size else 0.0
        ax.text(t + 0.01, 0.97, f"{name}\n{100 * share:.0f}% reach it", fontsize=9,
                transform=ax.get_xaxis_transform(), va="top")
    ax.set_xlim(0, 1)
    ax.set_xlabel("best IoU of any predicted box with any gold box (per case)")
    ax.set_ylabel("cases")
    ax.set_title(f"Figure 4b · {label}: per-case best IoU\n"
                 f"n = {ious.size} cases with a predicted box; {n_none} without any box (not shown)",
                 fontsize=11)
    lay_out(fig, Margins(left=0.65, bottom=0.55, head=0.5))
    return save(fig, path)


def splits_chart(splits: pd.DataFrame, path: Path, label: str) -> Path:
    """One panel per split: detection rate at IoU 0.3 and mAP30 per group, n under each bar."""
    names = [s for s in SPLIT_TITLES if s in set(splits["split"])]
    fig, axes = new_figure(max(len(names), 1), 1, width=4.6, height=4.4)
    overall = splits[splits["split"] == "all"]
    for ax, split in zip(axes[0], names):
        sub = splits[splits["split"] == split]
        x = np.arange(len(sub))
        w = 0.38
        det = 100 * sub["detection_rate30"].to_numpy(dtype=float)
        ap = 100 * sub["mAP30"].to_numpy(dtype=float)
        b1 = ax.bar(x - w / 2, det, w, color=OURS, label="detection rate @ IoU 0.3")
        b2 = ax.bar(x + w / 2, ap, w, color="#9ecae1", label="mAP30 (NOVA)")
        for bars in (b1, b2):
            ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=1)
        if not overall.empty:
            ax.axhline(100 * float(overall["detection_rate30"].iat[0]), color=OURS,
                       linestyle=":", linewidth=1)
        ax.set_xticks(x, [f"{g}\nn={n} cases\n{b} boxes" for g, n, b in
                          zip(sub["group"], sub["n_cases"], sub["n_gold"])], fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_ylabel("percent")
        title = SPLIT_TITLES[split]
        if split in SPLIT_NOTES:
            title += f"\n{SPLIT_NOTES[split]}"
        ax.set_title(title, fontsize=10)
    if names:
        axes[0, 0].legend(loc="upper left", fontsize=8, frameon=False)
    # y ticks and label; three-line group names; two-line panel titles under the headline
    lay_out(fig, Margins(left=0.7, bottom=0.6, head=0.8, right=0.05), wgap=0.8)
    headline(fig, f"Figure 4c · {label}: localization by group "
             "(dotted line: overall detection rate)", fontsize=12)
    return save(fig, path)

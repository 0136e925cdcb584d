"""Figures (matplotlib, headless): one module per task, shared look here.

Each figure is written to a PNG file by the task's `artifacts` hook and logged by the
benchmark; nothing here knows about MLflow.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402

GOLD = "#2ca02c"  # ground truth: green
PRED = "#d62728"  # predictions: red
OURS = "#1f77b4"
PAPER = "#7f7f7f"

STYLE = {
    "figure.dpi": 110,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "axes.titlesize": 11,
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 4.0,
               **subplots):
    with plt.rc_context(STYLE):
        return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                            **subplots)


def save(fig, path: Path, layout: bool = True) -> Path:
    """Write the PNG; `layout=False` skips tight_layout (a figure laid out by hand, drawn
    once less: what the many figures of a comparison do).

    zlib level 1 instead of PNG's default 6: the same pixels, ~10% less time per figure
    (most in Figure 4a, whose 9 MRI slices compress poorly either way), ~10% larger files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout:
        fig.tight_layout()
    fig.savefig(path, bbox_inches="tight", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path

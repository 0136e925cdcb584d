"""Figures (matplotlib, headless): one module per task, shared look here.

Each figure is written to a PNG file by the task's `artifacts` hook and logged by the
benchmark; nothing here knows about MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    # titles at the top of their axes, not placed above top ticks that no figure here has:
    # the automatic placement builds every axis' ticks to measure them (~50 ms of Figure 4a
    # alone in an A/B of that figure; the six: BENCHMARKS.md "figures")
    "axes.titley": 1.0,
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 4.0,
               **subplots):
    with plt.rc_context(STYLE):
        return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                            **subplots)


@dataclass(frozen=True)
class Margins:
    """Room around a figure's grid of axes, in inches; `head` above the top row holds its
    titles and the `headline`."""

    left: float
    bottom: float
    head: float
    right: float = 0.1


def lay_out(fig, margins: Margins, wgap: float = 0.0, hgap: float = 0.0) -> None:
    """Place the figure's grid of axes by hand: `margins` around it, `wgap` / `hgap` inches
    between neighbours (their tick labels and titles live there).

    Measuring every text to lay a figure out (tight_layout, or bbox_inches="tight" when
    saving) costs a draw of the whole figure each time, about as much as the drawing that
    writes the PNG; margins fixed per figure cost nothing (BENCHMARKS.md, "figures").
    """
    w, h = fig.get_size_inches()
    m = margins
    nrows, ncols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    aw = (w - m.left - m.right - (ncols - 1) * wgap) / ncols
    ah = (h - m.head - m.bottom - (nrows - 1) * hgap) / nrows
    fig.subplots_adjust(left=m.left / w, right=1 - m.right / w, bottom=m.bottom / h,
                        top=1 - m.head / h, wspace=wgap / aw, hspace=hgap / ah)


def headline(fig, text: str, **kwargs) -> None:
    """The figure's title, at the top of the `head` margin (see `lay_out`)."""
    fig.suptitle(text, y=1 - 0.06 / fig.get_size_inches()[1], va="top", **kwargs)


def save(fig, path: Path, *, crop: bool = False) -> Path:
    """Write the PNG and free the figure. The figures here are laid out by hand (`lay_out`);
    `crop` trims the PNG to what is drawn instead (a figure sized by its content, as the
    comparison figures are: one more pass over every text).

    zlib level 1 instead of PNG's default 6: the same pixels, ~10% less time per figure
    (most in Figure 4a, whose 9 MRI slices compress poorly either way), ~10% larger files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight" if crop else None, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path

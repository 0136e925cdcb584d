"""Task 2 figures: Figure 5 (language statistics, ground truth beside each model) and the
captioning scores by plane and by sequence.

Figures take plain inputs (LanguageStats per source, the by-group DataFrame) and write a PNG;
they compute nothing that a table does not already hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nova_mlflow.metrics.language import LanguageStats
from nova_mlflow.report.plots import (GOLD, PRED, STYLE, Margins, headline, lay_out, new_figure,
                                      save)

_OTHERS = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_METRICS = [("clinical_f1", "Clinical F1", "#4c72b0"), ("modality_f1", "Modality F1", "#dd8452"),
            ("meteor", "METEOR", "#8172b2")]


def _colours(names: list[str]) -> list[str]:
    """Ground truth green, the first model red, further models from a fixed palette."""
    out, k = [], 0
    for i, n in enumerate(names):
        if n == "ground truth":
            out.append(GOLD)
        elif PRED not in out:
            out.append(PRED)
        else:
            out.append(_OTHERS[k % len(_OTHERS)])
            k += 1
    return out


def _bar_labels(ax, bars, texts: list[str]) -> None:
    for b, t in zip(bars, texts):
        ax.annotate(t, (b.get_x() + b.get_width() / 2, b.get_height()), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9,
                    fontweight="bold")


def figure5(stats: Mapping[str, LanguageStats], path: Path) -> Path:
    """Vocabulary size, unique captions and words per caption, one colour per source."""
    names = list(stats)
    colours = _colours(names)
    fig, axes = new_figure(ncols=3, width=4.6, height=4.0)
    ax_vocab, ax_unique, ax_len = axes[0]
    x = np.arange(len(names))

    bars = ax_vocab.bar(x, [stats[n].vocab_size for n in names], color=colours, width=0.6)
    _bar_labels(ax_vocab, bars, [f"{stats[n].vocab_size:,}" for n in names])
    ax_vocab.set_title("Vocabulary size\n(distinct words)")

    ax_unique.bar(x, [stats[n].n_captions for n in names], color=colours, alpha=0.22, width=0.6,
                  label="all captions")
    bars = ax_unique.bar(x, [stats[n].unique_captions for n in names], color=colours, width=0.6,
                         label="distinct captions")
    _bar_labels(ax_unique, bars, [f"{stats[n].unique_captions:,} / {stats[n].n_captions:,}"
                                  for n in names])
    ax_unique.set_title("Unique captions\n(distinct / all)")
    for ax in (ax_vocab, ax_unique):
        ax.set_xticks(x, names, rotation=15 if len(names) > 2 else 0)
        ax.grid(axis="x", visible=False)
        ax.set_ylim(0, max(1, ax.get_ylim()[1]) * 1.12)

    counts = [np.asarray(stats[n].word_counts) for n in names]
    everything = np.concatenate([c for c in counts if len(c)] or [np.zeros(1)])
    top = max(5.0, float(np.percentile(everything, 98)))
    bins = np.linspace(0, top, 31)
    for n, c, col in zip(names, counts, colours):
        if not len(c):
            continue
        clipped = np.minimum(c, top)  # the last bin holds the long tail
        if n == "ground truth":
            ax_len.hist(clipped, bins=bins, density=True, histtype="stepfilled", alpha=0.35,
                        color=col, label=f"{n}: mean {c.mean():.1f}, median {np.median(c):.0f}")
        else:
            ax_len.hist(clipped, bins=bins, density=True, histtype="step", lw=2.2, color=col,
                        label=f"{n}: mean {c.mean():.1f}, median {np.median(c):.0f}")
        ax_len.axvline(c.mean(), color=col, ls="--", lw=1.3)
    ax_len.set_title("Words per caption\n(dashed: mean; last bin: longer)")
    ax_len.set_xlabel("words")
    ax_len.set_ylabel("share of captions")
    ax_len.set_yticks([])
    ax_len.legend(fontsize=8, frameon=False, loc="upper right")
    # y ticks (and label); names, maybe slanted; two-line panel titles under the headline
    lay_out(fig, Margins(left=0.6, bottom=0.6, head=0.85, right=0.05), wgap=0.8)
    headline(fig, "Figure 5 \u2013 language of the captions: " + " vs ".join(names),
             fontweight="bold")
    return save(fig, path)


def by_group_chart(groups: pd.DataFrame, path: Path, model: str = "",
                   last_label: str = "(not stated)") -> Path:
    """Horizontal grouped bars (percent) per plane and per sequence, n beside each group.

    Panels are stacked with heights proportional to their number of groups so every bar has
    the same thickness; groups run from the largest down, `last_label` (no plane or sequence
    named) at the bottom.
    """
    import matplotlib.pyplot as plt

    parts = [g for g in ("plane", "sequence") if (groups["grouping"] == g).any()]
    sizes = [int((groups["grouping"] == g).sum()) for g in parts]
    top = max(5.0, 100 * float(groups[[k for k, _, _ in _METRICS]].to_numpy().max()))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(parts), 1, figsize=(8.0, 1.4 + 0.62 * sum(sizes)),
                                 gridspec_kw={"height_ratios": sizes}, sharex=True, squeeze=False)
    h = 0.8 / len(_METRICS)
    for ax, grouping in zip(axes[:, 0], parts):
        rows = groups[groups["grouping"] == grouping]
        rows = rows.assign(_last=rows["group"] == last_label).sort_values(
            ["_last", "n_cases"], ascending=[False, True])
        y = np.arange(len(rows))
        for k, (key, label, colour) in enumerate(_METRICS):
            vals = 100 * rows[key].to_numpy(dtype=float)
            bars = ax.barh(y + ((len(_METRICS) - 1) / 2 - k) * h, vals, height=h * 0.92,
                           color=colour, label=label)
            for b, v in zip(bars, vals):
                ax.annotate(f"{v:.1f}", (b.get_width(), b.get_y() + b.get_height() / 2),
                            xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=7.5, color="#333")
        ax.set_yticks(y, [f"{g}\n(n={n})" for g, n in zip(rows["group"], rows["n_cases"])])
        ax.set_xlim(0, top * 1.15)
        ax.grid(axis="y", visible=False)
        ax.set_ylabel(grouping, fontweight="bold")
        for yy in y[:-1] + 0.5:
            ax.axhline(yy, color="#ddd", lw=0.8)
    axes[-1, 0].set_xlabel("percent (plane and sequence as named in the expert caption)")
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(_METRICS),
                      frameon=False)
    # two-line group names and the panel's name; shared x axis; the legend above the top
    lay_out(fig, Margins(left=1.3, bottom=0.55, head=0.75), hgap=0.25)
    headline(fig, f"Image description by plane and sequence{': ' + model if model else ''}",
             fontweight="bold")
    return save(fig, path)

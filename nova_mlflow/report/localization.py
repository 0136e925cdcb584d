"""Task 1 (anomaly localization) for people: Table 1, the splits, Figure 4.

`artifacts` turns a scored run into Table 1 beside the paper's rows (CSV, Markdown, HTML),
the results split by plane / number of gold boxes / lesion size (a CSV), and Figure 4
(examples over the image, IoU histogram, split bar charts).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nova_mlflow.report import paper, published
from nova_mlflow.report.definitions import localization_definitions
from nova_mlflow.report.tables import Section, paper_table, table_html, write_table
from nova_mlflow.schemas import Case
from nova_mlflow.scoring.common import TaskScore
from nova_mlflow.scoring.localization import SIZE_CLASSES

SPLITS = ("plane", "n_gold_group", "size_class")
TABLE1_STEM = "table1_localization"
SPLITS_FILE = "localization_splits.csv"
DEFINITIONS_FILE = "localization_definitions.md"
FIGURES = {"examples": "figures/fig4a_localization_examples.png",
           "iou_hist": "figures/fig4b_localization_iou_histogram.png",
           "splits": "figures/fig4c_localization_splits.png"}
HEADING = "Task 1: anomaly localization"


# --- Table 1 --------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


HIT_COLUMNS = {"hit30": "Hit30 (c)", "hit50": "Hit50 (c)", "mean_iou": "mean IoU (c)"}


def table1(ts: TaskScore) -> pd.DataFrame:
    """Our row (all three definitions) first, then the paper's rows (definition a), then the
    published zero-shot rows of definition (c), each naming its source; values as text."""
    m = ts.metrics
    head = {k: name for k, (name, _) in paper.COLUMNS1.items()}
    ours = {head[k]: _pct(m[k]) for k in ("mAP30", "mAP50", "mAP50_95", "ACC50")}
    ours[head["TP30"]] = f"{int(m['TP30'])}/{int(m['GT'])}"
    ours[head["FP30"]] = f"{int(m['FP30'])}"
    ours.update({"COCO mAP30": _pct(m["coco_mAP30"]), "COCO mAP50": _pct(m["coco_mAP50"]),
                 "COCO mAP50-95": _pct(m["coco_mAP50_95"])})
    ours.update({name: _pct(m[k]) for k, name in HIT_COLUMNS.items() if k in m})
    rows = []
    for r in paper.TABLE1:
        row = {"model": r["model"]}
        for k, (name, dec) in paper.COLUMNS1.items():
            row[name] = paper.printed(r[k], dec)
        row[head["TP30"]] = f"{r['TP30']}/{r['GT']}"
        rows.append(row)
    model = ts.context.model or "(model not named)"
    table = paper_table(ours, rows, model)
    waldo = [{"model": f"{r['model']} ({r['n_images']} images)",
              "source": published.SOURCE_LABEL + ": " + published.source_of(r)
              + (" (a later setup)" if r["later_setup"] else ""),
              **{name: f"{r[k]:.2f}" for k, name in HIT_COLUMNS.items()}}
             for r in published.PUBLISHED_FILES]
    return pd.concat([table, pd.DataFrame(waldo)], ignore_index=True).fillna("")


# --- splits and the example sample ----------------------------------------------------------

def splits(table: pd.DataFrame) -> pd.DataFrame:
    """Per group of cases: counts, detection rate at IoU 0.3 (detected / gold boxes), mAP30.

    Every split partitions the cases, so each split's n_cases sums to the number of cases.
    An "all" row repeats the totals (its mAP30 is the run's mAP30 up to per-case rounding).
    """
    table = table.assign(plane=table["plane"].replace("", "unknown"))  # caption names none
    parts = [("all", "all", table)]
    for split in SPLITS:
        for group, sub in table.groupby(split, sort=False):
            parts.append((split, str(group), sub))
    order = {"plane": ["axial", "coronal", "sagittal", "unknown"],
             "n_gold_group": ["0", "1", "2", "3+"], "size_class": ["none", *SIZE_CLASSES]}
    parts.sort(key=lambda p: (["all", *SPLITS].index(p[0]),
                              order.get(p[0], []).index(p[1]) if p[1] in order.get(p[0], []) else 99,
                              p[1]))
    rows = []
    for split, group, sub in parts:
        n_gold = int(sub["n_gold"].sum())
        det = int(sub["detected30"].sum())
        rows.append({"split": split, "group": group, "n_cases": len(sub), "n_gold": n_gold,
                     "n_pred": int(sub["n_pred"].sum()), "detected30": det,
                     "false_positives30": int(sub["false_positives30"].sum()),
                     "detection_rate30": round(det / n_gold, 4) if n_gold else 0.0,
                     "mAP30": round(float(sub["ap30"].mean()), 4) if len(sub) else 0.0})
    return pd.DataFrame(rows)


def example_sample(table: pd.DataFrame, k: int = 3) -> list[tuple[str, list[int]]]:
    """Row indices of the k best, k median and k worst cases by (AP@30, best IoU).

    Ties break by filename, so the sample is the same on every machine; a case appears in
    one row only (small runs may show fewer).
    """
    if table.empty:
        return []
    order = sorted(range(len(table)), key=lambda i: (-float(table["ap30"].iat[i]),
                                                     -float(table["best_iou"].iat[i]),
                                                     str(table["filename"].iat[i])))
    n, mid = len(order), len(order) // 2
    start = max(0, min(mid - k // 2, n - k))
    groups = [("best", order[:k]), ("median", order[start:start + k]),
              ("worst", order[max(0, n - k):][::-1])]
    seen: set[int] = set()
    out = []
    for name, idx in groups:
        fresh = [i for i in idx if i not in seen]
        seen.update(fresh)
        if fresh:
            out.append((name, fresh))
    return out


# --- files ----------------------------------------------------------------------------------

def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> Section:
    """Table 1 (3 formats), the splits CSV and the three Figure 4 PNGs, under out_dir."""
    from nova_mlflow.report.plots import (
        localization as plots,  # matplotlib only when files are made
    )

    out_dir = Path(out_dir)
    title = "Table 1: anomaly localization (NOVA protocol; COCO columns from pycocotools)"
    table = table1(ts)
    section = Section(HEADING, table_html(table), files=write_table(table, TABLE1_STEM, out_dir,
                                                                     title))
    files = section.files
    defs = out_dir / DEFINITIONS_FILE
    defs.write_text(localization_definitions(ts.metrics), encoding="utf-8")
    files.append(defs)
    if ts.table.empty:  # no case scored: nothing to split or draw
        return section
    split_df = splits(ts.table)
    out_dir.mkdir(parents=True, exist_ok=True)
    split_df.to_csv(out_dir / SPLITS_FILE, index=False)
    files.append(out_dir / SPLITS_FILE)
    label = ts.context.model or "this run"
    by_name = {c.filename: c for c in cases}
    sample = [(name, [(by_name[ts.table["filename"].iat[i]], ts.table.iloc[i].to_dict())
                      for i in idx if ts.table["filename"].iat[i] in by_name])
              for name, idx in example_sample(ts.table)]
    section.figures = [plots.examples(sample, out_dir / FIGURES["examples"], label),
                       plots.iou_histogram(ts.table, out_dir / FIGURES["iou_hist"], label),
                       plots.splits_chart(split_df, out_dir / FIGURES["splits"], label)]
    files += section.figures
    return section

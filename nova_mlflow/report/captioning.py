"""Task 2 (image description) for people: Table 2, results by plane and sequence, Figure 5."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics.language import language_stats
from nova_mlflow.metrics.status import binary_scores
from nova_mlflow.report import paper
from nova_mlflow.report.tables import Section, paper_table, table_html, write_table
from nova_mlflow.schemas import Case
from nova_mlflow.scoring.common import TaskScore

TABLE2_STEM = "table2_captioning"
NOT_STATED = "(not stated)"
HEADING = "Task 2: image description"


def group_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """`text_metrics` of some cases with a reference, summed from their per-case count
    columns (scoring/captioning.case_row) instead of re-reading every caption."""
    out = {f"{k}_f1": cap.prf(*(rows[f"{k}_n_{c}"].sum() for c in ("hits", "pred", "gold")))[
        "f1"] for k in ("clinical", "modality")}
    matches, totals = ([sum(x) for x in zip(*(json.loads(c) for c in rows[col]))]
                       for col in ("bleu_matches", "bleu_totals"))
    out["bleu"] = cap.bleu4_from_counts(matches, totals, rows["n_words"].sum(),
                                        rows["gt_n_words"].sum())
    out["meteor"] = cap.mean([float(v) for v in rows["meteor"]])
    b = binary_scores([t or "abnormal" for t in rows["gt_binary"].fillna("")],  # as text_metrics
                      [p or None for p in rows["pred_binary"].fillna("")])
    out["binary_accuracy"], out["binary_f1"] = b["accuracy"], b["f1"]
    return out


def by_group(table: pd.DataFrame) -> pd.DataFrame:
    """Text metrics per plane and per sequence (as derived from the expert caption)."""
    scored = table[table["has_reference"] == 1]
    out = []
    for grouping in ("plane", "sequence"):
        labels = scored[grouping].replace("", NOT_STATED).fillna(NOT_STATED)
        for group, rows in scored.groupby(labels, sort=True):
            m = group_metrics(rows)
            out.append({"grouping": grouping, "group": group, "n_cases": len(rows),
                        "answered": int((rows["status"] == "answered").sum()),
                        **{k: round(m[k], 4) for k in ("clinical_f1", "modality_f1", "bleu",
                                                       "meteor", "binary_accuracy", "binary_f1")}})
    return pd.DataFrame(out)


def model_name(ts: TaskScore) -> str:
    """The model named by the scoring context, else the one the answers name, else "this run"."""
    if ts.context.model:
        return ts.context.model
    names = Counter(n for n in ts.table.get("model", pd.Series(dtype=str)) if n)
    return names.most_common(1)[0][0] if names else "this run"


def table2(metrics: Mapping[str, float], model: str) -> pd.DataFrame:
    """Our row (percent, 2 decimals) first, then the paper's rows as it prints them."""
    ours = {name: f"{100 * metrics[key]:.2f}" for key, (name, _) in paper.COLUMNS2.items()}
    rows = [{"model": r["model"], **{name: paper.printed(r[key], dec)
                                     for key, (name, dec) in paper.COLUMNS2.items()}}
            for r in paper.TABLE2]
    return paper_table(ours, rows, model)


def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> Section:
    """Table 2 (CSV/MD/HTML), results by plane and sequence (CSV + chart), Figure 5."""
    from nova_mlflow.report.plots.captioning import by_group_chart, figure5

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model_name(ts)
    table = table2(ts.metrics, model)
    section = Section(HEADING, table_html(table), files=write_table(
        table, TABLE2_STEM, out_dir, "Table 2: image description (percent)"))
    files = section.files
    groups = by_group(ts.table)
    groups_csv = out_dir / "captioning_by_plane_sequence.csv"
    groups.to_csv(groups_csv, index=False)
    files.append(groups_csv)
    answered = ts.table.loc[ts.table["status"] == "answered", "caption_pred"]
    stats = {"ground truth": language_stats(c.caption for c in cases),
             model: language_stats(answered)}
    section.figures = [figure5(stats, out_dir / "figure5_language.png")]
    files += section.figures
    if not groups.empty:
        files.append(by_group_chart(groups, out_dir / "captioning_by_plane_sequence.png", model,
                                    last_label=NOT_STATED))
    return section

"""Task 3 (diagnostic reasoning) for people: Table 3, Figure 6, label frequencies, and the
definitions used, written with the run's own numbers (diagnosis_definitions.md)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pandas as pd

from nova_mlflow.report import paper
from nova_mlflow.report.tables import Section, paper_table, table_html, write_table
from nova_mlflow.schemas import Case
from nova_mlflow.scoring.common import TaskScore
from nova_mlflow.scoring.diagnosis import label_of

TABLE3_STEM = "table3_diagnosis"
FIGURE6 = "figure6_diagnosis_frequencies.png"
DEFINITIONS_FILE = "diagnosis_definitions.md"
LABELS_FILE = "diagnosis_label_frequencies.csv"
HEADING = "Task 3: diagnostic reasoning"

DEFINITIONS = """\
# Task 3 (diagnostic reasoning): definitions used in this run

- **Matcher**: {matcher}.
  A verdict says whether one predicted diagnosis names the case's final diagnosis;
  synonyms and differences in specificity are accepted. The offline matcher's rules
  (normalisation, abbreviation table, fuzzy threshold) are documented in
  `nova_mlflow/metrics/matching.py` and `nova_mlflow/metrics/diagnosis.py`.
- **Truths that name no diagnosis** (`diagnosis/no_reference`: {n_no_ref} of {n_cases}
  cases here; 44 slices of 14 cases on NOVA, all "Final Diagnosis not found."): a final
  diagnosis that, lowercased, whitespace collapsed and surrounding punctuation dropped, is
  empty, a null marker (nan, none, null, n/a, -, ?) or a placeholder ("[final] diagnosis
  [:|-] not found / not available / unknown / pending ...", "no [final] diagnosis") names
  no diagnosis (`nova_mlflow/metrics/diagnosis_reference.py`). No answer can match it, so
  such cases are left out of Top-1/Top-5, coverage, entropy and GT entropy, and their
  predictions are never sent to the matcher or the judge.
- **Rank**: position (1-5) of the first prediction the matcher accepts; none if no
  prediction matches.
- **Top-1 / Top-5** (`diagnosis/top1`, `diagnosis/top5`): share of the cases with a
  reference ({n_scored} here; 862 on NOVA) whose rank is <= 1 / <= 5. Missing answers,
  failed calls, refusals and unparseable answers count as misses.
- **Ground-truth label**: the case's `final_diagnosis` string (whitespace collapsed); the
  label space is the set of distinct labels among the scored cases with a reference
  ({n_gt_labels} here).
- **Predicted label** of a case: derived from its top-1 prediction only. It is the case's own
  ground-truth label when the matcher accepts the top-1 prediction; otherwise the
  ground-truth label the offline matcher maps it to (closest of those it matches); otherwise
  the prediction's normalised text. Cases without any prediction have no predicted label.
  ({n_pred} cases have one; {n_pred_labels} distinct predicted labels, {n_mapped} of them
  in the ground-truth label space.)
- **Coverage** (`diagnosis/coverage`): share of the distinct ground-truth labels that occur
  among the predicted (top-1) labels: |GT labels ∩ predicted labels| / |GT labels|.
- **Entropy** (`diagnosis/entropy`): Shannon entropy in bits, H = -Σ p log2 p, of the
  distribution of predicted labels over the cases that have one.
- **GT entropy** (`diagnosis/gt_entropy`): the same over the ground-truth labels of all
  scored cases; its ceiling is log2({n_gt_labels}) = {ceiling:.2f} bits.

Values in this run: Top-1 {top1:.2%}, Top-5 {top5:.2%}, coverage {coverage:.2%},
entropy {entropy:.2f} bits, ground-truth entropy {gt_entropy:.2f} bits.
The paper's Table 3 used a GPT-4o judge and did not publish these exact definitions, so its
rows are a reference, not a like-for-like comparison.
"""


def _matcher_text(name: str) -> str:
    if name == "offline":
        return "offline rule-based matcher (`--judge none`; no model call)"
    return f"`{name}`"


def definitions(ts: TaskScore) -> str:
    """The definitions text with this run's figures, read from its per-case table."""
    t, m = ts.table, ts.metrics
    ref = (t["has_reference"].astype(bool) if "has_reference" in t
           else pd.Series([True] * len(t), index=t.index))
    gt_labels = [label_of(str(v)) for v in t.get("truth", pd.Series(dtype=str))[ref]]
    given = [str(v) for v in t.get("predicted_label", pd.Series(dtype=str))[ref] if v]
    gt_set = set(gt_labels)
    n_gt = len(gt_set)
    matcher = str(t["matcher"].iat[0]) if len(t) else "offline"
    shown = {k: m.get(k, 0.0) for k in ("top1", "top5", "coverage", "entropy", "gt_entropy")}
    return DEFINITIONS.format(
        matcher=_matcher_text(matcher), n_cases=len(t), n_scored=int(ref.sum()),
        n_no_ref=int(len(t) - ref.sum()), n_gt_labels=n_gt, n_pred=len(given),
        n_pred_labels=len(set(given)), n_mapped=len(set(given) & gt_set),
        ceiling=math.log2(n_gt) if n_gt else 0.0, **shown)


# --- Table 3 --------------------------------------------------------------------------------

def table3(ts: TaskScore) -> pd.DataFrame:
    """Our row first, then the paper's rows (marked), then the ground truth's entropy."""
    m = ts.metrics
    head = {k: name for k, (name, _) in paper.COLUMNS3.items()}
    ours = {head[k]: f"{100 * m[k]:.1f}" for k in ("top1", "top5", "coverage")}
    ours[head["entropy"]] = f"{m['entropy']:.2f}"
    matcher = str(ts.table["matcher"].iat[0]) if len(ts.table) else "offline"
    ours["Matcher"] = "offline rules" if matcher == "offline" else matcher
    rows = []
    for r in paper.TABLE3:
        row = {"model": r["model"]}
        for k, (name, dec) in paper.COLUMNS3.items():
            row[name] = paper.printed(r[k], dec)
        row["Matcher"] = "GPT-4o judge"
        rows.append(row)
    df = paper_table(ours, rows, ts.context.model or "(model not named)")
    gt = {"model": "ground truth (final diagnoses)", "source": "this run's cases",
          head["entropy"]: f"{m['gt_entropy']:.2f}"}
    return pd.concat([df, pd.DataFrame([gt])], ignore_index=True).fillna("")


def label_frequencies(ts: TaskScore) -> pd.DataFrame:
    """Label, count among predictions (top-1) and among the ground truth, per label."""
    t = ts.table
    if "has_reference" in t:  # truths that name no diagnosis are no label
        t = t[t["has_reference"].astype(bool)]
    pred = Counter(lab for lab in t.get("predicted_label", []) if lab)
    gt = Counter(label_of(v) for v in t.get("truth", []))
    labels = sorted(set(pred) | set(gt), key=lambda lab: (-gt[lab] - pred[lab], lab))
    return pd.DataFrame({"label": labels, "predicted": [pred[lab] for lab in labels],
                         "ground_truth": [gt[lab] for lab in labels],
                         "in_gt_labels": [int(lab in gt) for lab in labels]})


def _top(freq: pd.DataFrame, n: int = 3) -> list[tuple[str, int]]:
    top = freq[freq["predicted"] > 0].sort_values(["predicted", "label"], ascending=[False, True])
    return [(str(r.label), int(r.predicted)) for r in top.head(n).itertuples()]


def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> Section:
    """Table 3 (CSV, Markdown, HTML), Figure 6, label frequencies and the definitions."""
    from nova_mlflow.report.plots import diagnosis as plots  # matplotlib only when files are made

    out_dir = Path(out_dir)
    title = "Table 3: diagnostic reasoning (Top-1 / Top-5 / coverage in %, entropy in bits)"
    table = table3(ts)
    section = Section(HEADING, table_html(table), files=write_table(table, TABLE3_STEM, out_dir,
                                                                     title))
    files = section.files
    freq = label_frequencies(ts)
    freq.to_csv(out_dir / LABELS_FILE, index=False)
    files.append(out_dir / LABELS_FILE)
    defs = out_dir / DEFINITIONS_FILE
    defs.write_text(definitions(ts), encoding="utf-8")
    files.append(defs)
    section.figures = [plots.figure6(list(freq["predicted"]), list(freq["ground_truth"]),
                                     out_dir / FIGURE6, ts.context.model or "this run",
                                     (ts.metrics.get("entropy", 0.0),
                                      ts.metrics.get("gt_entropy", 0.0)), _top(freq))]
    files += section.figures
    return section

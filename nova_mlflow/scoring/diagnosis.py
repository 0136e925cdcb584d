"""Task 3 (diagnostic reasoning): ranked diagnoses matched to the final diagnosis.

`score` asks one `Matcher` (offline rules for `--judge none`, an LLM judge otherwise) about
every (prediction, truth) pair of a case in one batch, so a judge can cache and parallelise;
`artifacts` writes Table 3, Figure 6, the label frequencies and the definitions used.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nova_mlflow import paper
from nova_mlflow.metrics.matching import LabelSpace, Matcher, Verdict, matcher_for
from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.report import paper_table, write_table
from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.scoring.common import (
    AnswerKey,
    ScoreContext,
    TaskScore,
    counts,
    error_of,
    parse_all,
)

TABLE3_STEM = "table3_diagnosis"
FIGURE6 = "figure6_diagnosis_frequencies.png"
DEFINITIONS_FILE = "diagnosis_definitions.md"
LABELS_FILE = "diagnosis_label_frequencies.csv"
K = 5

DEFINITIONS = """\
# Task 3 (diagnostic reasoning): definitions used in this run

- **Matcher**: {matcher}.
  A verdict says whether one predicted diagnosis names the case's final diagnosis;
  synonyms and differences in specificity are accepted. The offline matcher's rules
  (normalisation, abbreviation table, fuzzy threshold) are documented in
  `nova_mlflow/matching.py` and `nova_mlflow/metrics/diagnosis.py`; a final diagnosis
  with no distinctive word ("Final Diagnosis not found.") matches no prediction.
- **Rank**: position (1-5) of the first prediction the matcher accepts; none if no
  prediction matches.
- **Top-1 / Top-5** (`diagnosis/top1`, `diagnosis/top5`): share of ALL cases ({n_cases})
  whose rank is <= 1 / <= 5. Missing answers, failed calls, refusals and unparseable
  answers count as misses.
- **Ground-truth label**: the case's `final_diagnosis` string (whitespace collapsed); the
  label space is the set of distinct labels among the scored cases ({n_gt_labels} here).
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


@dataclass
class DiagnosisScore(TaskScore):
    """A TaskScore that also carries the definitions text written with the run."""

    definitions: str = ""


def label_of(truth: str) -> str:
    """A ground-truth label: the final diagnosis with whitespace collapsed."""
    return " ".join(truth.split())


def predicted_labels(top1: list[str | None], truths: list[str], top1_matches: list[bool],
                     space: LabelSpace) -> list[str | None]:
    """Each case's predicted label (definition in DEFINITIONS); None without a prediction."""
    cache: dict[str, str] = {}
    out: list[str | None] = []
    for pred, truth, ok in zip(top1, truths, top1_matches):
        if pred is None:
            out.append(None)
        elif ok:
            out.append(label_of(truth))
        else:
            if pred not in cache:
                cache[pred] = space.lookup(pred) or dx.normalize(pred) or pred.strip().lower()
            out.append(cache[pred])
    return out


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], ctx: ScoreContext,
          matcher: Matcher | None = None) -> TaskScore:
    """Ranks, Top-1/Top-5, coverage, entropy and the per-case table (DEFINITIONS).

    `matcher` defaults to the one `ctx.judge` names; tests (and a caller holding a judge
    already) pass it in. All pairs go to the matcher in one `match_many` call.
    """
    matcher = matcher or ctx.matcher or matcher_for(ctx.judge)
    parsed = parse_all(cases, answers, Task.diagnosis, ctx.frame)
    preds = [list(p.prediction.diagnoses)[:K] if p is not None and p.ok else []  # type: ignore[union-attr]
             for _, p, _ in parsed]
    pairs = [(d, c.final_diagnosis) for c, ps in zip(cases, preds) for d in ps]
    if not pairs:
        flat: list[Verdict] = []
    elif getattr(matcher, "takes_cases", False):  # the LLM judge: its traces name the cases
        flat = matcher.match_many(pairs, cases=[c for c, ps in zip(cases, preds) for _ in ps])
    else:
        flat = matcher.match_many(pairs)
    verdicts: list[list[Verdict]] = []
    i = 0
    for ps in preds:
        verdicts.append(list(flat[i:i + len(ps)]))
        i += len(ps)
    ranks = [dx.first_match_rank([v.match for v in vs]) for vs in verdicts]
    truths = [c.final_diagnosis for c in cases]
    space = LabelSpace(label_of(t) for t in truths)
    labels = predicted_labels([ps[0] if ps else None for ps in preds], truths,
                              [bool(vs) and vs[0].match for vs in verdicts], space)
    gt_labels = [label_of(t) for t in truths]
    given = [lab for lab in labels if lab is not None]
    gt_set = set(gt_labels)
    rows = []
    for c, (a, p, status), ps, vs, rank, lab in zip(cases, parsed, preds, verdicts, ranks, labels):
        row = {"filename": c.filename, "case_id": c.case_id, "status": status,
               "truth": c.final_diagnosis, "rank": rank or 0, "top1": int(rank == 1),
               "top5": int(rank is not None and rank <= K)}
        for j in range(K):
            row[f"pred{j + 1}"] = ps[j] if j < len(ps) else ""
            row[f"match{j + 1}"] = ("yes" if vs[j].match else "no") if j < len(vs) else ""
            row[f"reason{j + 1}"] = vs[j].reason if j < len(vs) else ""
        row.update({"predicted_label": lab or "", "in_gt_labels": int(lab in gt_set),
                    "matcher": matcher.name, "error": error_of(a, p),
                    "answer": (a.text or "") if a else ""})
        rows.append(row)
    metrics = {"top1": dx.top_k(ranks, 1), "top5": dx.top_k(ranks, K),
               "coverage": dx.coverage(given, gt_labels), "entropy": dx.entropy_bits(given),
               "gt_entropy": dx.entropy_bits(gt_labels), **counts([s for _, _, s in parsed])}
    n_gt = len(set(gt_labels))
    shown = {k: metrics[k] for k in ("top1", "top5", "coverage", "entropy", "gt_entropy")}
    text = DEFINITIONS.format(
        matcher=_matcher_text(matcher), n_cases=len(cases), n_gt_labels=n_gt, n_pred=len(given),
        n_pred_labels=len(set(given)), n_mapped=len(set(given) & gt_set),
        ceiling=math.log2(n_gt) if n_gt else 0.0, **shown)
    return DiagnosisScore(Task.diagnosis, metrics, pd.DataFrame(rows), ctx, definitions=text)


def _matcher_text(m: Matcher) -> str:
    if m.name == "offline":
        return "offline rule-based matcher (`--judge none`; no model call)"
    return f"`{m.name}`"


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
    pred = Counter(lab for lab in ts.table.get("predicted_label", []) if lab)
    gt = Counter(label_of(t) for t in ts.table.get("truth", []))
    labels = sorted(set(pred) | set(gt), key=lambda lab: (-gt[lab] - pred[lab], lab))
    return pd.DataFrame({"label": labels, "predicted": [pred[lab] for lab in labels],
                         "ground_truth": [gt[lab] for lab in labels],
                         "in_gt_labels": [int(lab in gt) for lab in labels]})


def _top(freq: pd.DataFrame, n: int = 3) -> list[tuple[str, int]]:
    top = freq[freq["predicted"] > 0].sort_values(["predicted", "label"], ascending=[False, True])
    return [(str(r.label), int(r.predicted)) for r in top.head(n).itertuples()]


def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> list[Path]:
    """Table 3 (CSV, Markdown, HTML), Figure 6, label frequencies and the definitions."""
    from nova_mlflow.plots import diagnosis as plots  # matplotlib only when files are made

    out_dir = Path(out_dir)
    title = "Table 3: diagnostic reasoning (Top-1 / Top-5 / coverage in %, entropy in bits)"
    files = write_table(table3(ts), TABLE3_STEM, out_dir, title)
    freq = label_frequencies(ts)
    freq.to_csv(out_dir / LABELS_FILE, index=False)
    files.append(out_dir / LABELS_FILE)
    defs = out_dir / DEFINITIONS_FILE
    defs.write_text(getattr(ts, "definitions", "") or "(scored without definitions)\n",
                    encoding="utf-8")
    files.append(defs)
    files.append(plots.figure6(list(freq["predicted"]), list(freq["ground_truth"]),
                               out_dir / FIGURE6, ts.context.model or "this run",
                               ts.metrics.get("entropy", 0.0), ts.metrics.get("gt_entropy", 0.0),
                               _top(freq)))
    return files

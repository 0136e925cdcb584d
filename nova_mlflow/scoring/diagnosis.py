"""Task 3 (diagnostic reasoning): ranked diagnoses matched to the final diagnosis.

`score` asks one `Matcher` (offline rules for `--judge none`, an LLM judge otherwise) about
every (prediction, truth) pair of a case in one batch, so a judge can cache and parallelise;
`case_row` is the one place a case's diagnosis columns are built. report/diagnosis.py writes
Table 3, Figure 6, the label frequencies and the definitions used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from nova_mlflow.metrics.matching import LabelSpace, Matcher, Verdict, matcher_for
from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.metrics.diagnosis_reference import names_no_diagnosis
from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.scoring.common import (
    AnswerKey,
    ScoreContext,
    TaskScore,
    counts,
    error_of,
    parse_all,
)

K = 5




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


def case_row(preds: list[str], verdicts: list[Verdict], truth: str, rank: int | None,
             predicted_label: str | None = None, has_reference: bool = True) -> dict[str, Any]:
    """A case's diagnosis columns: truth and its label, rank of the first match, top-1/top-5
    (null when the truth names no diagnosis: left out of every metric), the predicted label
    counted by coverage and entropy ("" when none), and per prediction the text, the
    verdict and its reason."""
    row: dict[str, Any] = {"truth": truth, "truth_label": label_of(truth), "rank": rank or 0,
                           "top1": int(rank == 1) if has_reference else None,
                           "top5": int(rank is not None and rank <= K) if has_reference else None,
                           "has_reference": int(has_reference),
                           "predicted_label": (predicted_label or "") if has_reference else ""}
    for j in range(K):
        row[f"pred{j + 1}"] = preds[j] if j < len(preds) else ""
        row[f"match{j + 1}"] = ("yes" if verdicts[j].match else "no") if j < len(verdicts) else ""
        row[f"reason{j + 1}"] = verdicts[j].reason if j < len(verdicts) else ""
    return row


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
    has_ref = [not names_no_diagnosis(c.final_diagnosis) for c in cases]
    # a truth that names no diagnosis is never sent to the matcher (nor to a judge)
    asked = [ps if ref else [] for ps, ref in zip(preds, has_ref)]
    pairs = [(d, c.final_diagnosis) for c, ps in zip(cases, asked) for d in ps]
    if not pairs:
        flat: list[Verdict] = []
    elif getattr(matcher, "takes_cases", False):  # the LLM judge: its traces name the cases
        flat = matcher.match_many(pairs, cases=[c for c, ps in zip(cases, asked) for _ in ps])
    else:
        flat = matcher.match_many(pairs)
    verdicts: list[list[Verdict]] = []
    i = 0
    for ps in asked:
        verdicts.append(list(flat[i:i + len(ps)]))
        i += len(ps)
    ranks = [dx.first_match_rank([v.match for v in vs]) for vs in verdicts]
    truths = [c.final_diagnosis for c in cases]
    space = LabelSpace(label_of(t) for t, ref in zip(truths, has_ref) if ref)
    labels = predicted_labels([ps[0] if ps else None for ps in preds], truths,
                              [bool(vs) and vs[0].match for vs in verdicts], space)
    gt_labels = [label_of(t) for t, ref in zip(truths, has_ref) if ref]
    given = [lab for lab, ref in zip(labels, has_ref) if lab is not None and ref]
    gt_set = set(gt_labels)
    rows = []
    for c, (a, p, status), ps, vs, rank, lab, ref in zip(cases, parsed, preds, verdicts, ranks,
                                                         labels, has_ref):
        # a truth naming no diagnosis is left out of top-k, coverage and entropy
        rows.append({"filename": c.filename, "case_id": c.case_id, "status": status,
                     **case_row(ps, vs, c.final_diagnosis, rank, lab, ref),
                     "in_gt_labels": int(lab in gt_set) if ref else 0,
                     "matcher": matcher.name, "error": error_of(a, p),
                     "answer": (a.text or "") if a else ""})
    scored_ranks = [r for r, ref in zip(ranks, has_ref) if ref]
    metrics = {"top1": dx.top_k(scored_ranks, 1), "top5": dx.top_k(scored_ranks, K),
               "coverage": dx.coverage(given, gt_labels), "entropy": dx.entropy_bits(given),
               "gt_entropy": dx.entropy_bits(gt_labels),
               "no_reference": float(len(cases) - len(scored_ranks)),
               **counts([s for _, _, s in parsed])}
    return TaskScore(Task.diagnosis, metrics, pd.DataFrame(rows), ctx)

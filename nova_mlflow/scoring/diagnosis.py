"""Task 3 (diagnostic reasoning): ranked diagnoses matched to the final diagnosis."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.scoring.common import AnswerKey, ScoreContext, TaskScore, counts, error_of, parse_all


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], ctx: ScoreContext) -> TaskScore:
    parsed = parse_all(cases, answers, Task.diagnosis, ctx.frame)
    ranks: list[int | None] = []
    rows = []
    for c, (a, p, status) in zip(cases, parsed):
        preds = list(p.prediction.diagnoses) if p is not None and p.ok else []  # type: ignore[union-attr]
        rank = dx.rank_of_truth(preds, c.final_diagnosis)
        ranks.append(rank)
        row = {"filename": c.filename, "case_id": c.case_id, "status": status,
               "truth": c.final_diagnosis, "rank": rank if rank is not None else 0,
               "top1": int(rank == 1), "top5": int(rank is not None and rank <= 5)}
        for i in range(5):
            row[f"pred{i + 1}"] = preds[i] if i < len(preds) else ""
        row["error"] = error_of(a, p)
        rows.append(row)
    metrics = {"top1": dx.top_k(ranks, 1), "top5": dx.top_k(ranks, 5),
               **counts([s for _, _, s in parsed])}
    return TaskScore(Task.diagnosis, metrics, pd.DataFrame(rows))


def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> list[Path]:
    """Table 3 and Figure 6 arrive with the diagnosis issue; nothing extra yet."""
    return []

"""Task 2 (image description): the predicted caption beside the expert one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.scoring.common import AnswerKey, ScoreContext, TaskScore, counts, error_of, parse_all


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], ctx: ScoreContext) -> TaskScore:
    parsed = parse_all(cases, answers, Task.captioning, ctx.frame)
    rows = []
    for c, (a, p, status) in zip(cases, parsed):
        rows.append({"filename": c.filename, "case_id": c.case_id, "plane": c.derived.plane or "",
                     "status": status, "caption_gt": c.caption or "",
                     "caption_pred": p.prediction.text if p is not None and p.ok else "",  # type: ignore[union-attr]
                     "error": error_of(a, p)})
    return TaskScore(Task.captioning, counts([s for _, _, s in parsed]), pd.DataFrame(rows))


def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> list[Path]:
    """Table 2 and Figure 5 arrive with the captioning issue; nothing extra yet."""
    return []

"""Answers -> per-case rows -> metrics, one module per task; `score` runs the tasks asked.

Each task module exposes `score(cases, answers, ctx) -> TaskScore` and `case_row(...)`, the
one place its per-case columns are built: the per-case tables, the traces' feedback
(feedback.py), the GenAI scorers, compare and gate all read those rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.scoring import captioning, diagnosis, localization
from nova_mlflow.scoring.common import AnswerKey, ScoreContext, Scores, TaskScore

MODULES = {Task.localization: localization, Task.captioning: captioning,
           Task.diagnosis: diagnosis}


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], tasks: Iterable[Task],
          ctx: ScoreContext) -> Scores:
    out = Scores()
    for task in tasks:
        out.tasks[task] = MODULES[task].score(cases, answers, ctx)
    return out


__all__ = ["AnswerKey", "ScoreContext", "Scores", "TaskScore", "score"]

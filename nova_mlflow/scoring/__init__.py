"""Answers -> scores, one module per task; `score` runs the tasks that were asked.

Each task module exposes `score(cases, answers, ctx) -> TaskScore` and
`artifacts(task_score, cases, out_dir) -> list[Path]` (its tables and figures as files), so
a task's metrics, per-case table and report grow in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

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


def write_artifacts(scores: Scores, cases: list[Case], out_dir: Path) -> list[Path]:
    files: list[Path] = []
    for task, ts in scores.tasks.items():
        files += MODULES[task].artifacts(ts, cases, out_dir)
    return files


__all__ = ["AnswerKey", "ScoreContext", "Scores", "TaskScore", "score", "write_artifacts"]

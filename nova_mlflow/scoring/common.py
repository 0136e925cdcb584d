"""What every task's scoring shares: status of each case, counts, result containers.

Every case counts: a case without an answer line is `missing`, one whose call failed is an
`api_error`, one whose text could not be read is a `parse_failure`; all three score as "no
prediction" (never silently as a wrong answer with content), and each is counted apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nova_mlflow.schemas import Frame
from nova_mlflow.parsing import parse_answer
from nova_mlflow.schemas import Answer, Case, Parsed, Task

AnswerKey = tuple[str, Task]


@dataclass(frozen=True)
class ScoreContext:
    """What scoring needs beyond the answers: the declared box frame, the diagnosis judge."""

    frame: Frame = Frame.pixel_xyxy
    judge: str = "none"
    model: str = ""  # who wrote the answers; labels our row in the paper-style tables
    matcher: Any = None  # a ready diagnosis Matcher (e.g. the LLM judge); None = from `judge`
    memo: Any = None  # a memo.ScoreMemo: METEOR and BLEU values computed before; None = compute


@dataclass
class TaskScore:
    task: Task
    metrics: dict[str, float]
    table: pd.DataFrame
    context: ScoreContext = field(default_factory=ScoreContext)  # how it was scored (reports)


@dataclass
class Scores:
    tasks: dict[Task, TaskScore] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Flat `task/metric` keys as in interface.md."""
        return {f"{t.value}/{k}": v for t, s in self.tasks.items() for k, v in s.metrics.items()}


def status_of(answer: Answer | None, parsed: Parsed | None) -> str:
    if answer is None or (answer.status == "answered" and answer.text is None):
        return "missing"  # no line, or a line saying "no answer" (text null)
    if answer.status == "api_error":
        return "api_error"
    if answer.status == "refused":
        return "refused"
    if parsed is None or not parsed.ok:
        return "parse_failure"
    return "answered"


def counts(statuses: list[str]) -> dict[str, float]:
    return {
        "n_cases": float(len(statuses)),
        "answered": float(statuses.count("answered")),
        "missing": float(statuses.count("missing")),
        "parse_failures": float(statuses.count("parse_failure")),
        "api_errors": float(statuses.count("api_error")),
        "refused": float(statuses.count("refused")),
    }


def parse_all(cases: list[Case], answers: Mapping[AnswerKey, Answer], task: Task,
               frame: Frame) -> list[tuple[Answer | None, Parsed | None, str]]:
    out = []
    for c in cases:
        a = answers.get((c.filename, task))
        p = None
        if a is not None and a.status == "answered" and a.text is not None:
            p = parse_answer(task, a.text, frame=frame, original=(c.image_width, c.image_height),
                             sent=(c.image_width, c.image_height))
        out.append((a, p, status_of(a, p)))
    return out


def error_of(answer: Answer | None, parsed: Parsed | None) -> str:
    if parsed is not None and not parsed.ok:
        return parsed.error or ""
    return (answer.error if answer else None) or ""

"""Answers -> per-case rows and aggregate metrics, for each task that was asked.

Every case counts: a case without an answer line is `missing`, one whose call failed is an
`api_error`, one whose text could not be read is a `parse_failure`; all three score as "no
prediction" (never silently as a wrong answer with content), and each is counted apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from nova_mlflow.frames import Frame
from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.metrics import localization as loc
from nova_mlflow.parsing import parse_answer
from nova_mlflow.schemas import Answer, Box, Case, Parsed, Task

AnswerKey = tuple[str, Task]


@dataclass
class TaskScore:
    task: Task
    metrics: dict[str, float]
    table: pd.DataFrame


@dataclass
class Scores:
    tasks: dict[Task, TaskScore] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Flat `task/metric` keys as in interface.md."""
        return {f"{t.value}/{k}": v for t, s in self.tasks.items() for k, v in s.metrics.items()}


def _status(answer: Answer | None, parsed: Parsed | None) -> str:
    if answer is None:
        return "missing"
    if answer.status == "api_error":
        return "api_error"
    if answer.status == "refused":
        return "refused"
    if parsed is None or not parsed.ok:
        return "parse_failure"
    return "answered"


def _counts(statuses: list[str]) -> dict[str, float]:
    return {
        "n_cases": float(len(statuses)),
        "answered": float(statuses.count("answered")),
        "missing": float(statuses.count("missing")),
        "parse_failures": float(statuses.count("parse_failure")),
        "api_errors": float(statuses.count("api_error")),
        "refused": float(statuses.count("refused")),
    }


def _parse_all(cases: list[Case], answers: Mapping[AnswerKey, Answer], task: Task,
               frame: Frame) -> list[tuple[Answer | None, Parsed | None, str]]:
    out = []
    for c in cases:
        a = answers.get((c.filename, task))
        p = None
        if a is not None and a.status == "answered":
            p = parse_answer(task, a.text, frame=frame, original=(c.image_width, c.image_height),
                             sent=(c.image_width, c.image_height))
        out.append((a, p, _status(a, p)))
    return out


def score_localization(cases: list[Case], answers: Mapping[AnswerKey, Answer], frame: Frame) -> TaskScore:
    parsed = _parse_all(cases, answers, Task.localization, frame)
    images: list[tuple[list[Box], list[Box]]] = []
    rows = []
    for c, (a, p, status) in zip(cases, parsed):
        preds = list(p.prediction.boxes) if p is not None and p.ok else []  # type: ignore[union-attr]
        images.append((preds, list(c.gold_boxes)))
        pc = loc.per_case(preds, c.gold_boxes)
        rows.append({
            "filename": c.filename, "case_id": c.case_id, "plane": c.derived.plane or "",
            "status": status, "n_gold": len(c.gold_boxes), "n_pred": len(preds),
            "best_iou": round(pc.best_iou, 4), "detected30": pc.detected30,
            "missed30": pc.missed30, "false_positives30": pc.false_positives30,
            "ap30": round(pc.ap30, 4),
            "gold_boxes": json.dumps([[round(v, 1) for v in b.as_list()] for b in c.gold_boxes]),
            "pred_boxes": json.dumps([[round(v, 1) for v in b.as_list()] for b in preds]),
            "error": (p.error if p is not None and not p.ok else (a.error if a else None)) or "",
            "answer": (a.text or "") if a else "",
        })
    metrics = {**loc.nova_protocol(images), **loc.prf_metrics(images),
               **_counts([s for _, _, s in parsed])}
    return TaskScore(Task.localization, metrics, pd.DataFrame(rows))


def score_diagnosis(cases: list[Case], answers: Mapping[AnswerKey, Answer]) -> TaskScore:
    parsed = _parse_all(cases, answers, Task.diagnosis, Frame.pixel_xyxy)
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
        row["error"] = (p.error if p is not None and not p.ok else (a.error if a else None)) or ""
        rows.append(row)
    metrics = {"top1": dx.top_k(ranks, 1), "top5": dx.top_k(ranks, 5),
               **_counts([s for _, _, s in parsed])}
    return TaskScore(Task.diagnosis, metrics, pd.DataFrame(rows))


def score_captioning(cases: list[Case], answers: Mapping[AnswerKey, Answer]) -> TaskScore:
    parsed = _parse_all(cases, answers, Task.captioning, Frame.pixel_xyxy)
    rows = []
    for c, (a, p, status) in zip(cases, parsed):
        rows.append({"filename": c.filename, "case_id": c.case_id, "plane": c.derived.plane or "",
                     "status": status, "caption_gt": c.caption or "",
                     "caption_pred": p.prediction.text if p is not None and p.ok else "",  # type: ignore[union-attr]
                     "error": (p.error if p is not None and not p.ok else (a.error if a else None)) or ""})
    return TaskScore(Task.captioning, _counts([s for _, _, s in parsed]), pd.DataFrame(rows))


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], tasks: Iterable[Task],
          frame: Frame) -> Scores:
    out = Scores()
    for task in tasks:
        if task is Task.localization:
            out.tasks[task] = score_localization(cases, answers, frame)
        elif task is Task.diagnosis:
            out.tasks[task] = score_diagnosis(cases, answers)
        else:
            out.tasks[task] = score_captioning(cases, answers)
    return out

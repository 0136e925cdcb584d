"""Task 1 (anomaly localization): NOVA protocol, order-free P/R/F1, per-case detail."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nova_mlflow.metrics import localization as loc
from nova_mlflow.metrics.coco import coco_map
from nova_mlflow.schemas import Answer, Box, Case, Task
from nova_mlflow.scoring.common import AnswerKey, ScoreContext, TaskScore, counts, error_of, parse_all


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], ctx: ScoreContext) -> TaskScore:
    parsed = parse_all(cases, answers, Task.localization, ctx.frame)
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
            "error": error_of(a, p),
            "answer": (a.text or "") if a else "",
        })
    by_name = [images[i] for i in sorted(range(len(cases)), key=lambda i: cases[i].filename)]
    metrics = {**loc.nova_protocol(images), **coco_map(by_name), **loc.prf_metrics(images),
               **counts([s for _, _, s in parsed])}
    return TaskScore(Task.localization, metrics, pd.DataFrame(rows))


def artifacts(ts: TaskScore, cases: list[Case], out_dir: Path) -> list[Path]:
    """Table 1 and Figure 4 arrive with the localization issue; nothing extra yet."""
    return []

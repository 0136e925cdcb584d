"""Task 1 (anomaly localization): answers -> per-case rows -> the three published definitions.

(a) NOVA-protocol per-image AP (mAP30/50/50_95, ACC50, TP30/FP30), (b) COCO AP with every
score 1.0 (coco_mAP*), (c) the authors' hit rate (hit30, hit50, mean_iou); plus order-free
P/R/F1. results/localization_definitions.md (report/definitions.py) sets them side by side.

`case_row` is the one place a case's localization columns are built: the per-case table,
the traces' feedback, the GenAI scorers, compare and gate all read what it writes.
(report/localization.py turns a scored run into Table 1, the splits and Figure 4.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from nova_mlflow.metrics import localization as loc
from nova_mlflow.metrics.coco import coco_map
from nova_mlflow.metrics.components import localization_components
from nova_mlflow.metrics.hit_rate import best_iou, hit_rate_metrics
from nova_mlflow.schemas import Answer, Box, Case, LocalizationPrediction, Task
from nova_mlflow.scoring.common import (
    AnswerKey,
    ScoreContext,
    TaskScore,
    counts,
    error_of,
    parse_all,
)

#: Lesion size classes by the case's LARGEST gold box (so "small" = every lesion is small),
#: as the side of a square of the same area on the 480 x 480 slice: small < 64 px
#: (4,096 px^2, under 1.8 % of the slice), medium < 128 px (16,384 px^2, 7.1 %), large above.
#: COCO's 32 / 96 px would put 11 of NOVA's 906 cases in "small": its lesions are large.
#: On the real metadata these edges give 140 small, 372 medium, 394 large cases.
SIZE_EDGES_PX = (64, 128)
SIZE_CLASSES = ("small", "medium", "large")


def size_class(golds: list[Box]) -> str:
    """small / medium / large by the largest gold box; "none" for a case without one."""
    if not golds:
        return "none"
    area = max(b.area for b in golds)
    small, medium = SIZE_EDGES_PX
    return "small" if area < small**2 else "medium" if area < medium**2 else "large"


def n_gold_group(n: int) -> str:
    return "3+" if n >= 3 else str(n)


def case_row(pred: LocalizationPrediction | None, golds: list[Box],
             golds_as_written: list[Box] | None = None) -> dict[str, Any]:
    """A case's localization columns from its prediction (boxes in emitted order; None: no
    usable answer) and its gold boxes (clipped, and as written for the authors' hit rate).

    Besides what people read (best IoU, boxes, size class), the row keeps every component
    the case-clustered statistics resample (metrics/components.py), unrounded.
    """
    preds = list(pred.boxes) if pred is not None else []
    parts = localization_components(preds, golds)
    ious = loc.iou_matrix(preds, golds)
    written = golds_as_written or golds
    excl = best_iou(pred.as_written if pred is not None else [], [b.as_list() for b in written])
    return {
        "n_gold_group": n_gold_group(len(golds)), "size_class": size_class(golds),
        "gold_area_max": round(max((b.area for b in golds), default=0.0), 1),
        "best_iou": round(float(ious.max()) if ious.size else 0.0, 4),
        **parts, "missed30": len(golds) - parts["detected30"], "best_iou_excl": excl,
        "gold_boxes": json.dumps([[round(v, 1) for v in b.as_list()] for b in golds]),
        "pred_boxes": json.dumps([[round(v, 1) for v in b.as_list()] for b in preds]),
    }


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], ctx: ScoreContext) -> TaskScore:
    parsed = parse_all(cases, answers, Task.localization, ctx.frame)
    images: list[tuple[list[Box], list[Box]]] = []
    rows = []
    for c, (a, p, status) in zip(cases, parsed):
        pred = p.prediction if p is not None and p.ok else None
        assert pred is None or isinstance(pred, LocalizationPrediction)
        images.append((list(pred.boxes) if pred is not None else [], list(c.gold_boxes)))
        rows.append({"filename": c.filename, "case_id": c.case_id, "plane": c.derived.plane or "",
                     "status": status,
                     **case_row(pred, list(c.gold_boxes), list(c.gold_boxes_as_written)),
                     "error": error_of(a, p), "answer": (a.text or "") if a else ""})
    by_name = [images[i] for i in sorted(range(len(cases)), key=lambda i: cases[i].filename)]
    metrics = {**loc.nova_protocol(images), **coco_map(by_name), **loc.prf_metrics(images),
               **hit_rate_metrics([r["best_iou_excl"] for r in rows]),
               **counts([s for _, _, s in parsed])}
    return TaskScore(Task.localization, metrics, pd.DataFrame(rows), ctx)

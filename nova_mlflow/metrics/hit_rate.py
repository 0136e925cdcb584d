"""Localization definition (c): the hit rate the NOVA authors' later code calls "mAP@t". Pure.

Why a third definition: WALDO (Kainz, Mueller, Baugh, Bercea, MICCAI 2026), whose metrics
module says it follows "the NOVA benchmark protocol", publishes per-image NOVA results scored
this way (repository bkainz/WALDO_MICCAI26_demo, `waldo/metrics.py` functions `compute_iou`,
`compute_best_iou`, `compute_hit_rate`, `compute_map`; pixel conversion in
`scripts/run_inference.py` + `waldo/preprocessing.py` `CoordinateTransformer.denormalize_boxes`;
gold boxes in `waldo/data_loader.py` / `scripts/run_inference.py` `load_nova_dataset`).
To put our runs beside those public figures the definition must be reproduced exactly,
conventions included. This module is our own implementation of that definition:

- Boxes are [x1, y1, x2, y2] floats in pixels of the original image (480 x 480 on NOVA).
- IoU uses exclusive sizes (w = x2 - x1, no +1):
  inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)); area = (x2 - x1) * (y2 - y1)
  taken as written (no corner reordering); union = area_a + area_b - inter; IoU = inter / union
  when union > 0, else 0. A box with x2 <= x1 or y2 <= y1 therefore never overlaps anything
  and scores 0.
- Per image: best IoU over every (prediction, gold) pair; 0 when there is no prediction (an
  empty, refused, failed or unparseable answer) or no gold box. No one-to-one matching, no
  penalty for extra boxes, rater boxes ignored (gold only).
- Gold boxes: x2 = x + width, y2 = y + height, NOT clipped to the image
  (Case.gold_boxes_as_written; data/boxes.xywh_to_box with clip=False).
- Predictions: the model's numbers converted to pixels of the original image with no
  rounding, no clipping and no corner swap (LocalizationPrediction.as_written, from
  parsing/frames.to_pixels_as_written; for Gemini box_2d [ymin, xmin, ymax, xmax] on 0-1000:
  x = v / 1000 * width, y = v / 1000 * height).
- hit@t = share of ALL evaluated images whose best IoU is >= t (t = 0.3, 0.5);
  mean IoU = mean best IoU over all images (zeros included). WALDO prints them in percent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

XYXY = tuple[float, float, float, float]

#: Metric name -> IoU threshold (reached with >=).
HIT_THRESHOLDS: dict[str, float] = {"hit30": 0.3, "hit50": 0.5}


def iou_exclusive(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two [x1, y1, x2, y2] boxes with exclusive sizes, corners taken as given."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best_iou(preds: Iterable[Sequence[float]], golds: Iterable[Sequence[float]]) -> float:
    """Best IoU over every prediction x gold pair; 0.0 when either side is empty."""
    gold_list = list(golds)
    best = 0.0
    for p in preds:
        for g in gold_list:
            best = max(best, iou_exclusive(p, g))
    return best


def hit_rate_metrics(best_ious: Sequence[float]) -> dict[str, float]:
    """hit30, hit50 (share of images with best IoU >= 0.3 / 0.5) and mean_iou, as fractions.

    Every image counts in the denominator; an empty input gives zeros (as WALDO does).
    """
    n = len(best_ious)
    if n == 0:
        return {**{k: 0.0 for k in HIT_THRESHOLDS}, "mean_iou": 0.0}
    out = {k: sum(1 for v in best_ious if v >= t) / n for k, t in HIT_THRESHOLDS.items()}
    out["mean_iou"] = math.fsum(best_ious) / n
    return out

"""Task 1 scoring under the COCO protocol, through pycocotools.

Models give no confidence, so every box scores 1.0. With tied scores pycocotools orders
detections by image id, then by emitted order (its sorts are stable), so AP depends on the
image order: images get ids 1..N in the order passed in, and callers pass them sorted by
filename (the documented order). Every image is listed, with or without boxes;
zero detections in the whole set is scored 0 without calling loadRes (which raises on []).
IoU here is pycocotools' own (w = x2 - x1), not the NOVA protocol's inclusive one.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from nova_mlflow.schemas import Box

CATEGORY_ID = 1


def to_coco_xywh(box: Box) -> list[float]:
    """The one conversion from our pixel xyxy to COCO's [x, y, width, height]."""
    return [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1]


def coco_inputs(images: Sequence[tuple[Sequence[Box], Sequence[Box]]],
                size: tuple[int, int] = (480, 480)) -> tuple[dict, list[dict]]:
    """Ground-truth dataset dict and detection list, image ids 1..N in the given order."""
    gt = {"images": [], "annotations": [], "categories": [{"id": CATEGORY_ID, "name": "anomaly"}]}
    dets: list[dict] = []
    ann_id = 1
    for image_id, (preds, golds) in enumerate(images, start=1):
        gt["images"].append({"id": image_id, "width": size[0], "height": size[1]})
        for g in golds:
            xywh = to_coco_xywh(g)
            gt["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": CATEGORY_ID,
                                      "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0})
            ann_id += 1
        for p in preds:
            dets.append({"image_id": image_id, "category_id": CATEGORY_ID,
                         "bbox": to_coco_xywh(p), "score": 1.0})
    return gt, dets


THRESHOLDS = np.array([0.30] + [round(0.50 + 0.05 * i, 2) for i in range(10)])


def _mean_precision(precision: np.ndarray) -> float:
    """Mean over thresholds and recall points of a [T, R] slice; -1 marks 'no data'."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else 0.0


def coco_map(images: Sequence[tuple[Sequence[Box], Sequence[Box]]],
             size: tuple[int, int] = (480, 480)) -> dict[str, float]:
    """One COCOeval over thresholds 0.30, 0.50, 0.55, ..., 0.95, sliced per metric."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = coco_inputs(images, size)
    if not dets or not gt["annotations"]:
        return {"coco_mAP30": 0.0, "coco_mAP50": 0.0, "coco_mAP50_95": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints; stdout is for --json
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = [im["id"] for im in gt["images"]]
        ev.params.iouThrs = THRESHOLDS
        ev.params.areaRng = [[0, 1e10]]  # only "all" is read: skip small/medium/large (4x faster)
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][:, :, 0, 0, -1]  # [T, R] for category 1, area "all", 100 dets
    return {"coco_mAP30": _mean_precision(p[0:1]), "coco_mAP50": _mean_precision(p[1:2]),
            "coco_mAP50_95": _mean_precision(p[1:])}

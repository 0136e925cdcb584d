"""COCO protocol parity with a direct pycocotools call on the same boxes."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from nova_mlflow.metrics.coco import coco_map
from nova_mlflow.schemas import Box


def _random_images(seed: int, n: int = 40):
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        golds = []
        for _ in range(rng.integers(0, 4)):  # some images have no gold box
            x, y = rng.uniform(0, 380, 2)
            w, h = rng.uniform(10, 100, 2)
            golds.append(Box(x1=x, y1=y, x2=x + w, y2=y + h))
        preds = []
        for g in golds:
            if rng.random() < 0.7:
                j = rng.normal(0, 8, 4)
                preds.append(Box(x1=min(g.x1 + j[0], g.x2 + j[2]), y1=min(g.y1 + j[1], g.y2 + j[3]),
                                 x2=max(g.x1 + j[0], g.x2 + j[2]), y2=max(g.y1 + j[1], g.y2 + j[3])))
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 400, 2)
            preds.append(Box(x1=x, y1=y, x2=x + 40, y2=y + 40))
        images.append((preds, golds))
    return images


def _direct(images, thresholds=None):
    """pycocotools used the textbook way: files on disk, loadRes from a path, stats[]."""
    gt = {"images": [{"id": i + 1, "width": 480, "height": 480} for i in range(len(images))],
          "categories": [{"id": 7, "name": "lesion"}], "annotations": []}
    dets = []
    for i, (preds, golds) in enumerate(images):
        for g in golds:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1,
                                      "category_id": 7, "iscrowd": 0,
                                      "bbox": [g.x1, g.y1, g.x2 - g.x1, g.y2 - g.y1],
                                      "area": (g.x2 - g.x1) * (g.y2 - g.y1)})
        dets += [{"image_id": i + 1, "category_id": 7, "score": 1.0,
                  "bbox": [p.x1, p.y1, p.x2 - p.x1, p.y2 - p.y1]} for p in preds]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        if thresholds is not None:
            ev.params.iouThrs = np.array(thresholds)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_direct_pycocotools(seed):
    images = _random_images(seed)
    ours = coco_map(images)
    ev = _direct(images)
    assert ours["coco_mAP50_95"] == pytest.approx(ev.stats[0])
    assert ours["coco_mAP50"] == pytest.approx(ev.stats[1])
    ev30 = _direct(images, [0.3])
    p = ev30.eval["precision"][0, :, 0, 0, -1]
    assert ours["coco_mAP30"] == pytest.approx(p[p > -1].mean())


def test_image_order_is_the_order_given():
    """Tied scores make AP depend on image order; ids follow the order passed in."""
    images = _random_images(5)
    for order in (images, images[::-1]):
        ev = _direct(order, [0.3])
        p = ev.eval["precision"][0, :, 0, 0, -1]
        assert coco_map(order)["coco_mAP30"] == pytest.approx(p[p > -1].mean())
    # a toy set where the order really matters: one hit and one miss, both scored 1.0
    hit = ([Box(x1=0, y1=0, x2=10, y2=10)], [Box(x1=0, y1=0, x2=10, y2=10)])
    miss = ([Box(x1=200, y1=200, x2=210, y2=210)], [Box(x1=0, y1=0, x2=10, y2=10)])
    assert coco_map([hit, miss])["coco_mAP30"] != coco_map([miss, hit])["coco_mAP30"]


def test_empty_predictions_and_boxless_images():
    golds = [[Box(x1=0, y1=0, x2=10, y2=10)], []]
    assert coco_map([([], g) for g in golds]) == {"coco_mAP30": 0.0, "coco_mAP50": 0.0,
                                                  "coco_mAP50_95": 0.0}
    # a prediction on an image without gold is a false positive, not an error
    m = coco_map([(golds[0], golds[0]), ([Box(x1=5, y1=5, x2=9, y2=9)], [])])
    assert 0 < m["coco_mAP50"] < 1

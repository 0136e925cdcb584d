"""results/localization_definitions.md: the three published "mAP" definitions side by side.

Why: public NOVA numbers use three different definitions under similar names, and users
compare our runs with all of them. Each run writes this page with its own figures, so a
reader sees which of our numbers sits beside which public number.
"""

from __future__ import annotations

from collections.abc import Mapping

LOCALIZATION_DEFINITIONS = """\
# Task 1 (anomaly localization): three definitions, side by side

Public NOVA figures use three different definitions, all called "mAP" somewhere. This run
reports all three; compare a public number only with the definition it was computed with.

| | (a) NOVA paper: per-image AP | (b) COCO AP, every score 1.0 | (c) NOVA authors' hit rate |
|---|---|---|---|
| keys | `localization/mAP30`, `mAP50`, `mAP50_95`, `ACC50`, `TP30`, `FP30` | `localization/coco_mAP30`, `coco_mAP50`, `coco_mAP50_95` | `localization/hit30`, `hit50`, `mean_iou` |
| per image | predictions in the order the model emitted them; each is a true positive if its best-IoU gold box reaches t and is not matched yet, else a false positive; AP = mean running precision at the true positives (0 without one) | pycocotools' greedy matching with all scores 1.0; detections ordered by image (filename order) then emitted order | the best IoU over every (prediction, gold) pair; no matching, extra boxes cost nothing |
| aggregate | mAP@t = mean per-image AP over all images; mAP50-95 = mean over t = 0.50, 0.55, ..., 0.95; ACC50 = TP50 / gold boxes | COCO's 101-point interpolated AP over all images | hit@t = share of images whose best IoU >= t; mean IoU = mean best IoU over all images |
| IoU | inclusive pixel sizes (w = x2 - x1 + 1) | COCO's (exclusive, from x, y, width, height) | exclusive sizes (w = x2 - x1), corners as written |
| boxes | clipped to the image, corners ordered | clipped to the image, corners ordered | as written: gold x + width may pass the edge (5 NOVA boxes do), predictions neither clipped nor reordered (an inverted box overlaps nothing) |
| empty / failed answer | no prediction: AP 0, its gold boxes missed | no detection for that image | best IoU 0; the image stays in the denominator |
| public numbers | NOVA paper, Table 1 (Gemini 2.0 Flash 20.16 / 7.37; Qwen2.5-VL-72B 37.66 / 24.49); the third-party script whose gold total is 1068 | torchmetrics MeanAveragePrecision (GAZE NOVA harness) | WALDO (MICCAI 2026), `bkainz/WALDO_MICCAI26_demo` `waldo/metrics.py`, `results/nova/*.json` (Gemini 2.0 Flash zero-shot 18.10 / 6.40, mean IoU 15.18) |

This run: (a) mAP30 {mAP30}, mAP50 {mAP50}, mAP50-95 {mAP50_95}, ACC50 {ACC50},
TP30 {TP30} / {GT}, FP30 {FP30}; (b) COCO mAP30 {coco_mAP30}, mAP50 {coco_mAP50},
mAP50-95 {coco_mAP50_95}; (c) hit30 {hit30}, hit50 {hit50}, mean IoU {mean_iou}
(percent; counts as integers).

Order-free precision / recall / F1 at 0.3 and 0.5 (`precision30` ... `f1_50`) use a one-to-one
matching by descending IoU (inclusive sizes), so they do not depend on the order of boxes.
"""

_COUNTS = ("TP30", "FP30", "GT")


def localization_definitions(metrics: Mapping[str, float]) -> str:
    """The page with this run's localization figures filled in."""
    keys = ("mAP30", "mAP50", "mAP50_95", "ACC50", "TP30", "FP30", "GT", "coco_mAP30",
            "coco_mAP50", "coco_mAP50_95", "hit30", "hit50", "mean_iou")
    values = {k: ("n/a" if k not in metrics else f"{int(metrics[k])}" if k in _COUNTS
                  else f"{100 * metrics[k]:.2f}") for k in keys}
    return LOCALIZATION_DEFINITIONS.format(**values)

"""Task 1 scoring, NOVA protocol and order-free precision/recall/F1.

NOVA protocol (as the third-party evaluation code whose GT total matches the paper's 1068):
per image, predictions in the model's emitted order; each is a TP when its best-IoU gold box
reaches the threshold and is not yet matched, else FP. IoU uses inclusive pixel sizes
(w = x2 - x1 + 1). Per-image AP = mean running precision at the TP positions (0 when no TP);
mAP@t = mean over all images; mAP50_95 = mean over t = 0.50, 0.55, ..., 0.95;
ACC50 = TP50 / total gold boxes; TP30 / FP30 = dataset totals at IoU 0.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nova_mlflow.schemas import Box

THRESHOLDS_50_95 = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))


def iou_inclusive(a: Box, b: Box) -> float:
    """IoU counting pixels inclusively (a box from x1 to x2 spans x2 - x1 + 1 pixels)."""
    iw = min(a.x2, b.x2) - max(a.x1, b.x1) + 1
    ih = min(a.y2, b.y2) - max(a.y1, b.y1) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a.x2 - a.x1 + 1) * (a.y2 - a.y1 + 1)
    area_b = (b.x2 - b.x1 + 1) * (b.y2 - b.y1 + 1)
    return float(inter / (area_a + area_b - inter))


def iou_matrix(preds: Sequence[Box], golds: Sequence[Box]) -> np.ndarray:
    m = np.zeros((len(preds), len(golds)))
    for i, p in enumerate(preds):
        for j, g in enumerate(golds):
            m[i, j] = iou_inclusive(p, g)
    return m


@dataclass(frozen=True)
class ImageMatch:
    tp: list[bool]  # per prediction, in emitted order
    matched_gold: list[int | None]  # gold index each prediction matched, None for FP


def match_emitted_order(ious: np.ndarray, threshold: float) -> ImageMatch:
    """NOVA greedy matching: each prediction only looks at its single best gold box."""
    n_pred, n_gold = ious.shape
    used: set[int] = set()
    tp: list[bool] = []
    matched: list[int | None] = []
    for i in range(n_pred):
        if n_gold == 0:
            tp.append(False)
            matched.append(None)
            continue
        j = int(np.argmax(ious[i]))
        if ious[i, j] >= threshold and j not in used:
            used.add(j)
            tp.append(True)
            matched.append(j)
        else:
            tp.append(False)
            matched.append(None)
    return ImageMatch(tp, matched)


def image_ap(tp: Sequence[bool]) -> float:
    """Mean of the running precision at the TP positions; 0 when there is no TP."""
    hits, precisions = 0, []
    for k, is_tp in enumerate(tp, start=1):
        if is_tp:
            hits += 1
            precisions.append(hits / k)
    return float(np.mean(precisions)) if precisions else 0.0


def nova_protocol(images: Sequence[tuple[Sequence[Box], Sequence[Box]]]) -> dict[str, float]:
    """images: (predictions in emitted order, gold boxes) per image, every image listed."""
    if not images:
        return {k: 0.0 for k in ("mAP30", "mAP50", "mAP50_95", "ACC50", "TP30", "FP30", "GT")}
    ious = [iou_matrix(p, g) for p, g in images]
    gt_total = sum(len(g) for _, g in images)

    def at(t: float) -> tuple[float, int, int]:
        matches = [match_emitted_order(m, t) for m in ious]
        ap = float(np.mean([image_ap(mm.tp) for mm in matches]))
        tp = sum(sum(mm.tp) for mm in matches)
        fp = sum(len(mm.tp) - sum(mm.tp) for mm in matches)
        return ap, tp, fp

    ap30, tp30, fp30 = at(0.30)
    ap50, tp50, _ = at(0.50)
    ap50_95 = float(np.mean([at(t)[0] for t in THRESHOLDS_50_95]))
    return {
        "mAP30": ap30,
        "mAP50": ap50,
        "mAP50_95": ap50_95,
        "ACC50": tp50 / gt_total if gt_total else 0.0,
        "TP30": float(tp30),
        "FP30": float(fp30),
        "GT": float(gt_total),
    }


def match_order_free(ious: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one matching by descending IoU (ties by index): independent of emitted order."""
    pairs = sorted(
        ((ious[i, j], i, j) for i in range(ious.shape[0]) for j in range(ious.shape[1])
         if ious[i, j] >= threshold),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    used_p: set[int] = set()
    used_g: set[int] = set()
    out = []
    for _, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((i, j))
    return out


def precision_recall_f1(images: Sequence[tuple[Sequence[Box], Sequence[Box]]],
                        threshold: float) -> tuple[float, float, float]:
    tp = n_pred = n_gold = 0
    for preds, golds in images:
        tp += len(match_order_free(iou_matrix(preds, golds), threshold))
        n_pred += len(preds)
        n_gold += len(golds)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def prf_metrics(images: Sequence[tuple[Sequence[Box], Sequence[Box]]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t, tag in ((0.30, "30"), (0.50, "50")):
        p, r, f1 = precision_recall_f1(images, t)
        out[f"precision{tag}"], out[f"recall{tag}"], out[f"f1_{tag}"] = p, r, f1
    return out

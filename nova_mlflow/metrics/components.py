"""Per-case components: the counts a per-case table keeps so corpus metrics can be resampled.

Why: corpus metrics (COCO mAP, ACC50, micro P/R/F1, BLEU) are not means over cases, so a
bootstrap cannot average a per-case score; it can re-add per-case counts. The scoring
layer's `case_row` functions write these columns (scoring/localization.py and
scoring/captioning.py), and analysis/metric_specs.py rebuilds every Table 1-3 metric from
them under any case weights (at unit weights: exactly the logged metric). Values are JSON
scalars, never rounded, or a short JSON string where the component is a list.

localization_components(preds, golds), preds in the model's emitted order:
  n_gold, n_pred        gold / predicted boxes of the image
  ap30, ap50            NOVA-protocol per-image AP at IoU 0.30 / 0.50 (emitted order,
                        inclusive IoU w = x2 - x1 + 1; metrics/localization.py)
  ap50_95               mean of the per-image NOVA AP over IoU 0.50, 0.55, ..., 0.95
  detected30, false_positives30, detected50
                        NOVA-protocol true / false positives at 0.30, true positives at 0.50
  matched30, matched50  order-free one-to-one matches at 0.30 / 0.50 (precision/recall/F1)
  coco_tp               JSON list, one string per IoU threshold of metrics/coco.py THRESHOLDS
                        (0.30, 0.50, ..., 0.95), one '1'/'0' per detection (the first
                        MAX_DETS in emitted order): matched as pycocotools' evaluateImg
                        matches them with every score 1.0. "[]" = no detection.
bleu_components(ref, hyp), word lists of one (reference, answer) pair:
  bleu_matches          JSON list [m1, m2, m3, m4]: clipped n-gram matches (BLEU's modified
                        precision numerators, n = 1..4)
  bleu_totals           JSON list [c1, c2, c3, c4]: max(1, answer n-grams), the denominators
                        as nltk's corpus_bleu sums them
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import numpy as np

from nova_mlflow.metrics import localization as loc
from nova_mlflow.metrics.coco import THRESHOLDS as COCO_THRESHOLDS
from nova_mlflow.metrics.coco import to_coco_xywh
from nova_mlflow.schemas import Box

MAX_DETS = 100  # pycocotools' maxDets[-1]: later detections of an image are not scored
BLEU_ORDERS = (1, 2, 3, 4)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- localization ---------------------------------------------------------------------------

def coco_tp_flags(preds: Sequence[Box], golds: Sequence[Box]) -> list[str]:
    """Per COCO threshold, '1'/'0' per detection: pycocotools' greedy match, scores all 1.0.

    Re-implements evaluateImg for one image and one category with no crowd or ignored boxes
    (none exist here): each detection in emitted order takes the not-yet-matched gold box of
    highest IoU >= min(t, 1 - 1e-10), a later box winning ties. IoU from pycocotools itself.
    """
    dets = list(preds)[:MAX_DETS]
    if not dets:
        return []
    if not golds:
        return ["0" * len(dets)] * len(COCO_THRESHOLDS)
    from pycocotools import mask as mask_utils

    ious = mask_utils.iou([to_coco_xywh(b) for b in dets], [to_coco_xywh(g) for g in golds],
                          [0] * len(golds))
    out = []
    for t in COCO_THRESHOLDS:
        taken = [False] * len(golds)
        flags = []
        for d in range(len(dets)):
            best, m = min(t, 1 - 1e-10), -1
            for g in range(len(golds)):
                if taken[g] or ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m >= 0:
                taken[m] = True
            flags.append("1" if m >= 0 else "0")
        out.append("".join(flags))
    return out


def localization_components(preds: Sequence[Box], golds: Sequence[Box]) -> dict:
    """The localization component columns of one image (module docstring)."""
    ious = loc.iou_matrix(preds, golds)
    m30, m50 = loc.match_emitted_order(ious, 0.30), loc.match_emitted_order(ious, 0.50)
    ap50_95 = float(np.mean([loc.image_ap(loc.match_emitted_order(ious, t).tp)
                             for t in loc.THRESHOLDS_50_95]))
    return {
        "n_gold": len(golds), "n_pred": len(preds),
        "ap30": loc.image_ap(m30.tp), "ap50": loc.image_ap(m50.tp), "ap50_95": ap50_95,
        "detected30": sum(m30.tp), "false_positives30": len(preds) - sum(m30.tp),
        "detected50": sum(m50.tp),
        "matched30": len(loc.match_order_free(ious, 0.30)),
        "matched50": len(loc.match_order_free(ious, 0.50)),
        "coco_tp": _compact(coco_tp_flags(preds, golds)),
    }


# --- captioning -----------------------------------------------------------------------------

def bleu_counts(ref: Sequence[str], hyp: Sequence[str], n: int) -> tuple[int, int]:
    """(clipped matches, max(1, hypothesis n-grams)) for one reference, as nltk counts them."""
    h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    return sum(min(c, r[g]) for g, c in h.items()), max(1, sum(h.values()))


def bleu_components(ref: Sequence[str], hyp: Sequence[str]) -> dict[str, str]:
    """BLEU's per-order numerators and denominators of one pair (module docstring)."""
    counts = [bleu_counts(ref, hyp, n) for n in BLEU_ORDERS]
    return {"bleu_matches": _compact([m for m, _ in counts]),
            "bleu_totals": _compact([c for _, c in counts])}

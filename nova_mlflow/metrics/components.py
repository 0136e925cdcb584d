"""Per-case components: what a per-case table must keep so every metric can be resampled.

Why: corpus metrics (COCO mAP, micro keyword F1, BLEU, ACC50, coverage, entropy) are not
means over cases, so a bootstrap cannot average a per-case score. It can re-add per-case
counts. These functions give, for ONE case (one slice, one row of a task's per-case table),
the counts from which nova_mlflow/analysis/metric_specs.py rebuilds every Table 1-3 metric
under any case weights (at unit weights: exactly the package's scalar functions).

Contract with the scoring layer (column -> meaning); all values are JSON scalars, never
rounded (a rounded AP moves mAP by up to 5e-5), or a short JSON string (`coco_tp`).

localization_components(preds, golds), preds in the model's emitted order:
  n_gold, n_pred        gold / predicted boxes of the image
  ap30, ap50            NOVA-protocol per-image AP at IoU 0.30 / 0.50 (emitted order,
                        inclusive IoU w = x2 - x1 + 1; metrics/localization.py)
  ap50_95               mean of the per-image NOVA AP over IoU 0.50, 0.55, ..., 0.95
  tp30, fp30, tp50, fp50   NOVA-protocol true / false positives at 0.30 and 0.50
  match30, match50      order-free one-to-one matches at 0.30 / 0.50 (precision/recall/F1)
  best_iou_excl         best IoU over every predicted x gold pair, EXCLUSIVE sizes
                        (w = x2 - x1, as pycocotools and the NOVA authors' hit rate); 0 when
                        there is no prediction or no gold box
  coco_tp               JSON list, one string per IoU threshold of metrics/coco.py THRESHOLDS
                        (0.30, 0.50, ..., 0.95), one '1'/'0' per detection (the first
                        MAX_DETS in emitted order): matched as pycocotools' evaluateImg
                        matches them with every score 1.0. "[]" = no detection.
caption_components(gt_text, pred_text, meteor):
  has_ref               1 when the ground-truth caption has a word (text metrics count it)
  clin_hit, clin_pred, clin_gold   clinical keywords in both / predicted / ground truth
  mod_hit, mod_pred, mod_gold      the same for modality keywords
  bleu_m1..bleu_m4      clipped n-gram matches (BLEU modified-precision numerators)
  bleu_c1..bleu_c4      max(1, hypothesis n-grams) (denominators, as nltk's corpus_bleu)
  hyp_len, ref_len      hypothesis / reference lengths in words (one reference)
  n_words               words of the answer (mean_words counts answers with a word)
  meteor                nltk METEOR of the case (computed by the caller with WordNet)
  gt_abnormal, pred_abnormal   1 when the status read from the text is abnormal
                               (ground truth defaults to abnormal; no answer = not abnormal)
  binary_correct        1 when the read statuses agree (no answer is never correct)
diagnosis_components(rank, predicted_label, truth_label, has_reference):
  top1, top5            1 when the first matching prediction has rank <= 1 / <= 5
  label_pred            the case's predicted (top-1) label, "" when it has none
  label_gt              the case's ground-truth label
  has_ref               1 when the truth names a diagnosis (0: left out of every metric)
Every table also needs `filename` and `case_id` (the resampling unit).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import numpy as np

from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics import localization as loc
from nova_mlflow.metrics.coco import THRESHOLDS as COCO_THRESHOLDS
from nova_mlflow.metrics.coco import to_coco_xywh
from nova_mlflow.metrics.language import words
from nova_mlflow.metrics.status import read_status
from nova_mlflow.schemas import Box

MAX_DETS = 100  # pycocotools' maxDets[-1]: later detections of an image are not scored
BLEU_ORDERS = (1, 2, 3, 4)
TOP_K = 5


# --- localization ---------------------------------------------------------------------------

def iou_exclusive(preds: Sequence[Box], golds: Sequence[Box]) -> np.ndarray:
    """[n_pred, n_gold] IoU with exclusive sizes (w = x2 - x1); 0 where the union is empty."""
    if not preds or not golds:
        return np.zeros((len(preds), len(golds)))
    p = np.array([b.as_list() for b in preds], dtype=float)[:, None, :]
    g = np.array([b.as_list() for b in golds], dtype=float)[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0, None)
    inter = iw * ih
    union = ((p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
             + (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]) - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


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
    """The localization columns of one image (module docstring); preds in emitted order."""
    ious = loc.iou_matrix(preds, golds)
    m30, m50 = loc.match_emitted_order(ious, 0.30), loc.match_emitted_order(ious, 0.50)
    ap50_95 = float(np.mean([loc.image_ap(loc.match_emitted_order(ious, t).tp)
                             for t in loc.THRESHOLDS_50_95]))
    excl = iou_exclusive(preds, golds)
    return {
        "n_gold": len(golds), "n_pred": len(preds),
        "ap30": loc.image_ap(m30.tp), "ap50": loc.image_ap(m50.tp), "ap50_95": ap50_95,
        "tp30": sum(m30.tp), "fp30": len(preds) - sum(m30.tp),
        "tp50": sum(m50.tp), "fp50": len(preds) - sum(m50.tp),
        "match30": len(loc.match_order_free(ious, 0.30)),
        "match50": len(loc.match_order_free(ious, 0.50)),
        "best_iou_excl": float(excl.max()) if excl.size else 0.0,
        "coco_tp": json.dumps(coco_tp_flags(preds, golds), separators=(",", ":")),
    }


# --- captioning -----------------------------------------------------------------------------

def bleu_counts(ref: Sequence[str], hyp: Sequence[str], n: int) -> tuple[int, int]:
    """(clipped matches, max(1, hypothesis n-grams)) for one reference, as nltk counts them."""
    h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    return sum(min(c, r[g]) for g, c in h.items()), max(1, sum(h.values()))


def caption_components(gt_text: str | None, pred_text: str | None,
                       meteor: float | None = None) -> dict:
    """The captioning columns of one case (module docstring). `meteor`: None -> 0.0."""
    ref, hyp = words(gt_text), words(pred_text)
    kg, kp = cap.keywords(gt_text), cap.keywords(pred_text)
    out: dict = {"has_ref": int(bool(ref))}
    for tag, kind in (("clin", "clinical"), ("mod", "modality")):
        m = cap.match(getattr(kp, kind), getattr(kg, kind))
        out |= {f"{tag}_hit": len(m.hits), f"{tag}_pred": m.n_pred, f"{tag}_gold": m.n_gold}
    for n in BLEU_ORDERS:
        out[f"bleu_m{n}"], out[f"bleu_c{n}"] = bleu_counts(ref, hyp, n)
    truth = read_status(gt_text) or "abnormal"
    pred = read_status(pred_text)
    out |= {"hyp_len": len(hyp), "ref_len": len(ref), "n_words": len(hyp),
            "meteor": float(meteor or 0.0), "gt_abnormal": int(truth == "abnormal"),
            "pred_abnormal": int(pred == "abnormal"), "binary_correct": int(truth == pred)}
    return out


# --- diagnosis ------------------------------------------------------------------------------

def diagnosis_components(rank: int | None, predicted_label: str | None, truth_label: str,
                         has_reference: bool = True) -> dict:
    """The diagnosis columns of one case (module docstring); rank is 1-based or None."""
    return {"top1": int(rank == 1), "top5": int(rank is not None and rank <= TOP_K),
            "label_pred": predicted_label or "", "label_gt": truth_label,
            "has_ref": int(bool(has_reference))}

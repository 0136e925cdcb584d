"""NOVA protocol on hand-worked cases (numbers computed by hand in the comments)."""

from __future__ import annotations

import pytest

from nova_mlflow.metrics.localization import (
    image_ap,
    iou_inclusive,
    iou_matrix,
    match_emitted_order,
    nova_protocol,
    precision_recall_f1,
)
from nova_mlflow.schemas import Box


def B(x1, y1, x2, y2) -> Box:
    return Box(x1=x1, y1=y1, x2=x2, y2=y2)


def test_inclusive_iou():
    assert iou_inclusive(B(0, 0, 9, 9), B(0, 0, 9, 9)) == 1.0
    # 10 x 5 = 50 shared pixels of a 10 x 10 = 100 pixel box
    assert iou_inclusive(B(0, 0, 9, 9), B(0, 0, 9, 4)) == pytest.approx(0.5)
    # touching at one pixel column counts as overlap with inclusive sizes: 1 x 10 / (100+100-10)
    assert iou_inclusive(B(0, 0, 9, 9), B(9, 0, 18, 9)) == pytest.approx(10 / 190)
    assert iou_inclusive(B(0, 0, 9, 9), B(10, 0, 19, 9)) == 0.0


def test_running_precision_ap():
    assert image_ap([True, False]) == 1.0
    assert image_ap([False, True, True]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert image_ap([]) == 0.0 and image_ap([False, False]) == 0.0


def test_best_gold_already_matched_makes_a_false_positive():
    golds = [B(0, 0, 9, 9), B(20, 0, 29, 9)]
    preds = [B(0, 0, 9, 9), B(2, 0, 25, 9)]  # 2nd: IoU 80/260 with gold 0 (taken), 60/280 with gold 1
    m = match_emitted_order(iou_matrix(preds, golds), 0.30)
    assert m.tp == [True, False] and m.matched_gold == [0, None]


HAND = [
    # A: exact hit then a stray box -> TP, FP -> AP 1
    ([B(0, 0, 9, 9), B(100, 100, 109, 109)], [B(0, 0, 9, 9)]),
    # B: stray, half-box (IoU 0.5), exact -> F, T, T -> AP (1/2 + 2/3)/2 at t <= 0.5
    ([B(100, 100, 110, 110), B(0, 0, 9, 4), B(50, 50, 59, 59)], [B(0, 0, 9, 9), B(50, 50, 59, 59)]),
    # C: nothing predicted -> AP 0
    ([], [B(0, 0, 9, 9)]),
]


def test_nova_protocol_hand_worked():
    m = nova_protocol(HAND)
    ap_b = (1 / 2 + 2 / 3) / 2
    assert m["mAP30"] == pytest.approx((1 + ap_b + 0) / 3)
    assert m["mAP50"] == pytest.approx((1 + ap_b + 0) / 3)
    # from 0.55 on the half box is an FP: B becomes F, F, T -> AP 1/3
    assert m["mAP50_95"] == pytest.approx(((1 + ap_b) / 3 + 9 * (1 + 1 / 3) / 3) / 10)
    assert m["ACC50"] == pytest.approx(3 / 4)
    assert (m["TP30"], m["FP30"], m["GT"]) == (3, 2, 4)


def test_order_matters_for_nova_ap_but_not_for_f1():
    golds = [B(0, 0, 9, 9)]
    hit, miss = B(0, 0, 9, 9), B(200, 200, 220, 220)
    first = nova_protocol([([hit, miss], golds)])
    last = nova_protocol([([miss, hit], golds)])
    assert first["mAP30"] == 1.0 and last["mAP30"] == 0.5
    assert precision_recall_f1([([hit, miss], golds)], 0.3) == precision_recall_f1([([miss, hit], golds)], 0.3)


def test_precision_recall_f1_hand_worked():
    p, r, f1 = precision_recall_f1(HAND, 0.30)
    assert (p, r) == (pytest.approx(3 / 5), pytest.approx(3 / 4))
    assert f1 == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_perfect_and_empty():
    golds = [[B(0, 0, 9, 9)], [B(5, 5, 50, 60), B(100, 100, 200, 150)]]
    perfect = nova_protocol([(g, g) for g in golds])
    assert all(perfect[k] == 1.0 for k in ("mAP30", "mAP50", "mAP50_95", "ACC50"))
    empty = nova_protocol([([], g) for g in golds])
    assert all(empty[k] == 0.0 for k in ("mAP30", "mAP50", "mAP50_95", "ACC50", "TP30", "FP30"))
    assert empty["GT"] == 3


def test_per_case_row():
    from nova_mlflow.schemas import LocalizationPrediction
    from nova_mlflow.scoring.localization import case_row

    preds = [B(100, 100, 110, 110), B(0, 0, 9, 4), B(50, 50, 59, 59)]
    row = case_row(LocalizationPrediction(boxes=preds), [B(0, 0, 9, 9), B(50, 50, 59, 59)])
    assert (row["detected30"], row["missed30"], row["false_positives30"]) == (2, 0, 1)
    assert row["best_iou"] == 1.0 and row["n_pred"] == 3 and row["n_gold"] == 2

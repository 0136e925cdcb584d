"""Localization definition (c), the WALDO hit rate: hand-computed cases and a published run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nova_mlflow.metrics.hit_rate import (
    best_iou,
    gemini_box_2d_to_xyxy,
    gold_xyxy,
    hit_rate_metrics,
    iou_exclusive,
)
from nova_mlflow.metrics.published_hit_rate import (
    PUBLISHED_FILES,
    WALDO_PAPER_TABLE,
    source_of,
)

FIXTURE = Path(__file__).parent / "fixtures" / "waldo_nova_zeroshot_gemini20flash_ious.csv"


# --- IoU with exclusive sizes ---------------------------------------------------------------

def test_iou_exclusive_hand_values():
    # 5 x 5 overlap of two 10 x 10 boxes: 25 / (100 + 100 - 25)
    assert iou_exclusive((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(1 / 7)
    assert iou_exclusive((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou_exclusive((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(4 / 100)
    # sharing an edge is no overlap with exclusive sizes (the inclusive +1 convention says 1 column)
    assert iou_exclusive((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_iou_takes_corners_as_written():
    # an inverted box never overlaps: min(x2) <= its x2 < its x1 <= max(x1)
    assert iou_exclusive((10, 0, 0, 10), (0, 0, 10, 10)) == 0.0
    assert iou_exclusive((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0
    # zero-area boxes: no overlap; two points give union 0, scored 0 rather than an error
    assert iou_exclusive((5, 0, 5, 10), (0, 0, 10, 10)) == 0.0
    assert iou_exclusive((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0


def test_best_iou_over_every_pair_and_empty_sides():
    preds = [(0, 0, 10, 10), (20, 20, 30, 30)]
    golds = [(100, 100, 110, 110), (20, 20, 30, 40)]
    assert best_iou(preds, golds) == pytest.approx(100 / 200)  # second pred x second gold
    assert best_iou([], golds) == 0.0
    assert best_iou(preds, []) == 0.0
    assert best_iou(iter(preds), iter(golds)) == pytest.approx(0.5)  # iterables, golds reused


def test_hit_rate_thresholds_are_inclusive_and_every_image_counts():
    m = hit_rate_metrics([0.3, 0.5, 0.2999, 0.0])
    assert m["hit30"] == pytest.approx(2 / 4)
    assert m["hit50"] == pytest.approx(1 / 4)
    assert m["mean_iou"] == pytest.approx((0.3 + 0.5 + 0.2999) / 4)
    assert hit_rate_metrics([]) == {"hit30": 0.0, "hit50": 0.0, "mean_iou": 0.0}


def test_gold_boxes_are_not_clipped():
    # case0009_002's gold box overhangs the 480 px image; WALDO keeps y2 = 260.86 + 245 = 505.86
    assert gold_xyxy(148.12, 260.86, 246.0, 245.0) == pytest.approx((148.12, 260.86, 394.12, 505.86))


def test_gemini_box_2d_scaled_by_the_original_size_unclipped_unordered():
    assert gemini_box_2d_to_xyxy([100, 200, 300, 400]) == pytest.approx((96, 48, 192, 144))
    assert gemini_box_2d_to_xyxy([-10, 0, 1010, 500]) == pytest.approx((0, -4.8, 240, 484.8))
    assert gemini_box_2d_to_xyxy([300, 400, 100, 200]) == pytest.approx((192, 144, 96, 48))
    assert gemini_box_2d_to_xyxy([0, 0, 1000, 1000], 640, 320) == pytest.approx((0, 0, 640, 320))


def test_a_perfect_answer_on_an_overhanging_gold_box_is_not_a_perfect_score():
    gold = gold_xyxy(0, 400, 100, 100)  # 100 x 100, of which 100 x 80 inside the image
    visible = gemini_box_2d_to_xyxy([400 / 480 * 1000, 0, 1000, 100 / 480 * 1000])
    assert best_iou([visible], [gold]) == pytest.approx(8000 / 10000)


# --- a published per-image file recomputes to its published aggregate ----------------------

def _fixture_rows() -> list[dict[str, str]]:
    with FIXTURE.open(newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def test_published_gemini_zero_shot_aggregate_recomputes_from_its_per_image_ious():
    rows = _fixture_rows()
    assert len(rows) == 906
    assert len({r["case_id"] for r in rows}) == 281
    m = hit_rate_metrics([float(r["iou"]) for r in rows])
    # results/nova/nova_zeroshot_gemini20flash.json "metrics", in percent
    assert m["hit30"] * 100 == pytest.approx(18.101545253863133, abs=1e-9)
    assert m["hit50"] * 100 == pytest.approx(6.401766004415011, abs=1e-9)
    assert m["mean_iou"] * 100 == pytest.approx(15.175097087005748, abs=1e-9)
    gemini = next(r for r in PUBLISHED_FILES if r["model"] == "Gemini 2.0 Flash")
    assert m["hit30"] * 100 == pytest.approx(gemini["hit30"], abs=1e-9)


def test_published_case_sequence_is_the_metadata_row_order(real_metadata):
    import pandas as pd

    meta = pd.read_csv(real_metadata / "NOVA_metadata.csv", usecols=["filename", "case_id"])
    rows = _fixture_rows()
    assert [r["case_id"] for r in rows] == list(meta["case_id"])
    assert [r["filename"] for r in rows] == list(meta["filename"])


def test_published_table_rows_agree_with_each_other():
    """The paper-table rows (one decimal) are the per-file figures rounded; GPT-4o is the run mean."""
    files = {r["model"]: r for r in PUBLISHED_FILES}
    for row in WALDO_PAPER_TABLE:
        if row["model"] == "GPT-4o":
            runs = [files["GPT-4o (run 1)"], files["GPT-4o (run 2)"]]
            for k in ("hit30", "hit50", "mean_iou"):
                assert round(sum(r[k] for r in runs) / 2, 1) == row[k]
            continue
        f = files[row["model"]]
        assert f["n_images"] == row["n_images"] == 906
        for k in ("hit30", "hit50", "mean_iou"):
            assert round(f[k], 1) == row[k], (row["model"], k)
    assert source_of(files["Gemini 2.0 Flash"]) == (
        "bkainz/WALDO_MICCAI26_demo results/nova/nova_zeroshot_gemini20flash.json @fea4902")
    assert source_of(WALDO_PAPER_TABLE[0]).endswith("README.md @0f2e58f")

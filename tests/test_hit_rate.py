"""Localization definition (c), the WALDO hit rate: hand-computed cases and a published run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nova_mlflow.data.boxes import xywh_to_box
from nova_mlflow.metrics.hit_rate import best_iou, hit_rate_metrics, iou_exclusive
from nova_mlflow.parsing.frames import to_pixels_as_written
from nova_mlflow.schemas import Frame
from nova_mlflow.report.published import (
    PUBLISHED_FILES,
    WALDO_PAPER_TABLE,
    source_of,
)

from conftest import REAL_CSV  # noqa: E402

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


def gold_xyxy(x: float, y: float, w: float, h: float) -> tuple[float, ...]:
    return tuple(xywh_to_box((x, y, w, h), 480, 480, clip=False).as_list())


def gemini_box_2d_to_xyxy(values, width: int = 480, height: int = 480) -> tuple[float, ...]:
    return to_pixels_as_written(values, Frame.gemini_yxyx_1000, (width, height), (width, height))


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


# --- the whole pipeline against an independent implementation, Gemini frame ----------------

def _independent_hits(rows: list[dict], answers: dict[str, list[list[float]] | None]) -> dict:
    """WALDO's definition written again from scratch: gold x + w unclipped, box_2d
    [ymin, xmin, ymax, xmax] / 1000 * 480 as written, IoU with exclusive sizes, best over
    every pair, 0 without a prediction, every image in the denominator."""
    import ast

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    best = []
    for r in rows:
        g = ast.literal_eval(r["bbox_gold"])
        golds = [(x, y, x + w, y + h) for x, y, w, h in zip(g["x"], g["y"], g["width"], g["height"])]
        preds = [(b[1] / 1000 * 480, b[0] / 1000 * 480, b[3] / 1000 * 480, b[2] / 1000 * 480)
                 for b in (answers.get(r["filename"]) or [])]
        best.append(max((iou(p, q) for p in preds for q in golds), default=0.0))
    n = len(best)
    return {"hit30": sum(v >= 0.3 for v in best) / n, "hit50": sum(v >= 0.5 for v in best) / n,
            "mean_iou": sum(best) / n}


def test_hit_rate_of_perturbed_gemini_answers_equals_an_independent_implementation(
        tmp_path, real_metadata, placeholder_images):
    """Answers to all 906 slices in Gemini's box_2d frame, perturbed with a fixed seed: moved
    and resized gold boxes (some past the image edge, some with corners swapped), extra boxes,
    empty answers, refusals and missing lines. localization/hit30, hit50 and mean_iou of
    `evaluate` equal the definition computed independently here."""
    import ast
    import json
    import random

    from click.testing import CliRunner

    from nova_mlflow.cli import main

    rng = random.Random(181)
    with REAL_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))
    answers: dict[str, list[list[float]] | None] = {}
    lines = []
    for r in rows:
        u = rng.random()
        if u < 0.04:
            continue  # no line: missing
        if u < 0.08:
            lines.append({"filename": r["filename"], "task": "localization", "text": ""})
            answers[r["filename"]] = None
            continue
        if u < 0.10:
            lines.append({"filename": r["filename"], "task": "localization",
                          "text": "I am sorry, I cannot locate anything."})
            answers[r["filename"]] = None
            continue
        g = ast.literal_eval(r["bbox_gold"])
        boxes = []
        for x, y, w, h in zip(g["x"], g["y"], g["width"], g["height"]):
            if rng.random() < 0.15:
                continue
            s = rng.choice([5, 20, 60])
            y1, x1 = (y + rng.gauss(0, s)) / 480 * 1000, (x + rng.gauss(0, s)) / 480 * 1000
            y2, x2 = (y + h + rng.gauss(0, s)) / 480 * 1000, (x + w + rng.gauss(0, s)) / 480 * 1000
            box = [round(v) for v in (y1, x1, y2, x2)]
            if rng.random() < 0.05:
                box = [box[2], box[3], box[0], box[1]]  # corners swapped
            boxes.append(box)
        if rng.random() < 0.2:
            boxes.append([rng.randint(0, 900), rng.randint(0, 900), rng.randint(0, 1100),
                          rng.randint(0, 1100)])
        answers[r["filename"]] = boxes
        lines.append({"filename": r["filename"], "task": "localization",
                      "text": json.dumps([{"box_2d": b, "label": "lesion"} for b in boxes])})
    out = tmp_path / "gemini.jsonl"
    out.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(real_metadata), "--images",
                                    str(placeholder_images), "--outputs", str(out),
                                    "--model", "gemini-2.0-flash", "--no-traces", "--json"])
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    want = _independent_hits(rows, answers)
    for k in ("hit30", "hit50", "mean_iou"):
        assert m[f"localization/{k}"] == pytest.approx(want[k], abs=1e-9), k
    assert 0.05 < want["hit30"] < 0.95  # a non-trivial mix, so the comparison means something

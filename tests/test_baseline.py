"""Offline baselines: detector, template captions and leave-one-case-out retrieval."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nova_mlflow.providers.baseline.describe import describe, lesion_signal
from nova_mlflow.providers.baseline.detector import detect_boxes
from nova_mlflow.providers.baseline.retrieval import RetrievalIndex
from nova_mlflow.data import demo


@pytest.fixture(scope="session")
def baseline_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.build_demo(tmp_path_factory.mktemp("baseline_demo") / "set")


@pytest.fixture(scope="module")
def rows(baseline_demo: Path) -> pd.DataFrame:
    return pd.read_csv(baseline_demo / demo.CSV_NAME, dtype=str, keep_default_na=False)


def _gold_xyxy(text: str) -> list[tuple[float, float, float, float]]:
    d = ast.literal_eval(text)
    return [(x, y, x + w, y + h) for x, y, w, h in zip(d["x"], d["y"], d["width"], d["height"])]


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def _phantom(value: float, center=(150, 210), radii=(22, 16), seed: int = 0) -> np.ndarray:
    """A brain-like disc (brighter rim, darker core, symmetric) with one elliptical blob."""
    yy, xx = np.mgrid[0:480, 0:480]
    r = np.hypot((yy - 240) / 200, (xx - 240) / 170)
    img = np.where(r < 1, 110 + 30 * r, 0.0)
    blob = ((xx - center[0]) / radii[0]) ** 2 + ((yy - center[1]) / radii[1]) ** 2 < 1
    img[blob] = value
    img += np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


PHANTOM_BOX = (150 - 22, 210 - 16, 150 + 22, 210 + 16)


@pytest.mark.parametrize("value", [235, 25])
def test_detector_finds_bright_and_dark_blobs(value: float) -> None:
    boxes = detect_boxes(_phantom(value))
    assert boxes and _iou(boxes[0], PHANTOM_BOX) > 0.5
    assert all(0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 480 for x1, y1, x2, y2 in boxes)


def test_detector_finds_nothing_on_a_healthy_phantom() -> None:
    healthy = _phantom(0, radii=(1e-3, 1e-3))
    assert detect_boxes(healthy) == []


@pytest.mark.parametrize("image", [
    np.zeros((480, 480), np.uint8),
    np.full((480, 480), 128, np.uint8),
    np.zeros((5, 5)),
    np.zeros(480),
    np.full((64, 64), np.nan),
    np.array([["a"]]),
])
def test_detector_returns_nothing_for_blank_or_odd_input(image: np.ndarray) -> None:
    assert detect_boxes(image) == []


@pytest.mark.parametrize("seed", range(3))
def test_detector_survives_noise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for image in (rng.integers(0, 256, (480, 480)).astype(np.uint8), rng.random((97, 211)),
                  rng.integers(0, 256, (120, 120, 3)).astype(np.uint8)):
        boxes = detect_boxes(image, max_boxes=2)
        assert len(boxes) <= 2 and all(len(b) == 4 for b in boxes)


def test_detector_is_deterministic_and_respects_max_boxes() -> None:
    img = _phantom(230)
    assert detect_boxes(img) == detect_boxes(img.copy())
    assert detect_boxes(img, max_boxes=0) == []


def test_detector_beats_random_boxes_on_the_demo_set(rows: pd.DataFrame, baseline_demo: Path) -> None:
    """Hit = a gold box matched at IoU >= 0.3 by any of the image's 3 boxes. Random gets 3
    boxes per image with the gold boxes' sizes, placed uniformly over the head's extent."""
    rng = np.random.default_rng(0)
    hits = random_hits = total = 0
    for row in rows.itertuples():
        img = np.asarray(Image.open(baseline_demo / "images" / row.filename))
        gold = _gold_xyxy(row.bbox_gold)
        pred = detect_boxes(img, max_boxes=3)
        ys, xs = np.nonzero(img > 20)
        draws = 20
        for _ in range(draws):
            rand = []
            for k in range(3):
                x1, y1, x2, y2 = gold[k % len(gold)]
                x = rng.uniform(xs.min(), max(xs.min(), xs.max() - (x2 - x1)))
                y = rng.uniform(ys.min(), max(ys.min(), ys.max() - (y2 - y1)))
                rand.append((x, y, x + x2 - x1, y + y2 - y1))
            random_hits += sum(any(_iou(g, r) >= 0.3 for r in rand) for g in gold) / draws
        hits += sum(any(_iou(g, p) >= 0.3 for p in pred) for g in gold)
        total += len(gold)
    rate, chance = hits / total, random_hits / total
    print(f"detector hit rate {rate:.3f} vs random {chance:.3f} over {total} gold boxes")
    assert rate >= 0.3 and rate >= 3 * chance


def test_lesion_signal_matches_the_demo_captions(rows: pd.DataFrame, baseline_demo: Path) -> None:
    agree = n = 0
    for row in rows.itertuples():
        img = np.asarray(Image.open(baseline_demo / "images" / row.filename))
        said = "hypointense" if "hypointense" in row.caption else "hyperintense"
        for box in _gold_xyxy(row.bbox_gold):
            agree += lesion_signal(img, box) == said
            n += 1
    assert agree / n >= 0.9


def test_lesion_signal_on_phantoms() -> None:
    assert lesion_signal(_phantom(235), PHANTOM_BOX) == "hyperintense"
    assert lesion_signal(_phantom(25), PHANTOM_BOX) == "hypointense"
    assert lesion_signal(np.zeros((10, 10)), (0, 0, 10, 10)) in {"hyperintense", "hypointense"}


def test_describe_names_plane_side_and_signal() -> None:
    left_of_image = [(100.0, 100.0, 120.0, 118.0)]
    text = describe(left_of_image, (480, 480), "axial", ["hyperintense"])
    assert text.startswith("Axial image shows a small hyperintense")
    assert "right frontal lobe" in text  # image left = patient right
    assert "left" in describe([(380, 200, 420, 240)], (480, 480), "coronal")
    sag = describe([(60, 150, 100, 190)], (480, 480), "sagittal", ["hypointense"])
    assert sag.startswith("Sagittal") and "right" not in sag and "left" not in sag
    assert "frontal" in sag and "hypointense" in sag


def test_describe_several_boxes_and_none() -> None:
    boxes = [(100, 100, 170, 180), (300, 300, 320, 320)]
    text = describe(boxes, (480, 480), "axial", ["hyperintense", "hypointense"])
    assert "two large hyperintense and hypointense" in text and "both hemispheres" in text
    assert describe([], (480, 480), "axial") == "No focal abnormality is seen."
    assert describe(boxes, (480, 480)) == describe(boxes, (480, 480))
    assert describe(boxes, (480, 480)).startswith("The image shows two")


def test_describe_on_detector_output(rows: pd.DataFrame, baseline_demo: Path) -> None:
    row = rows.iloc[0]
    img = np.asarray(Image.open(baseline_demo / "images" / row.filename))
    boxes = detect_boxes(img)
    text = describe(boxes, img.shape, row.caption.split()[0], [lesion_signal(img, b) for b in boxes])
    assert text.endswith(".") and text.lower().startswith(row.caption.split()[0].lower())


def _docs(rows: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    return [(r.filename, r.case_id, f"{r.clinical_history} {r.caption}", r.final_diagnosis)
            for r in rows.itertuples()]


def test_retrieval_beats_chance_leave_one_case_out(rows: pd.DataFrame) -> None:
    index = RetrievalIndex(_docs(rows))
    top1 = top5 = 0
    for r in rows.itertuples():
        ranked = index.rank(f"{r.clinical_history} {r.caption}", r.case_id, k=5)
        assert len(ranked) == 5 == len(set(ranked))
        top1 += ranked[0] == r.final_diagnosis
        top5 += r.final_diagnosis in ranked
    n, labels = len(rows), rows.final_diagnosis.nunique()
    print(f"retrieval top-1 {top1 / n:.3f} top-5 {top5 / n:.3f}; chance {1 / labels:.3f} / {5 / labels:.3f}")
    assert top5 / n >= max(0.6, 1.4 * 5 / labels)
    assert top1 / n >= 3 / labels


def test_retrieval_never_uses_the_excluded_group() -> None:
    docs = [
        ("a1", "case1", "fever and a dental abscess", "Abscess"),
        ("a2", "case1", "fever and a dental abscess", "Abscess"),
        ("b1", "case2", "optic neuritis in a young woman", "MS"),
        ("c1", "case3", "known lung cancer with headache", "Metastases"),
        ("c2", "case4", "known breast cancer", "Metastases"),
    ]
    index = RetrievalIndex(docs)
    assert index.rank("fever and a dental abscess", "case1", k=5) == ["Metastases", "MS"]
    assert index.rank("fever and a dental abscess", "case2", k=1) == ["Abscess"]
    # no similar text at all: most frequent labels (by case count), ties by name
    assert index.rank("zzz", "case9", k=3) == ["Metastases", "Abscess", "MS"]
    assert index.rank("lung cancer", "case9", k=2)[0] == "Metastases"


def test_retrieval_handles_empty_inputs() -> None:
    assert RetrievalIndex([]).rank("anything", "x") == []
    index = RetrievalIndex([("a", "g", "the and of", "L")])
    assert index.rank("the", "h", k=3) == ["L"]


def test_plane_guess_on_the_demo_set(demo_dir):
    """The baseline names the plane in its captions; on the demo set it is nearly always right."""
    from nova_mlflow.providers.baseline.plane import guess_plane
    from nova_mlflow.data import load_dataset
    from nova_mlflow.data.images import load_gray

    cases = load_dataset(demo_dir).cases
    right = sum(guess_plane(load_gray(c.image_path)) == c.derived.plane for c in cases)
    assert right >= 0.9 * len(cases)
    import numpy as np

    assert guess_plane(np.zeros((480, 480), np.uint8)) is None

"""The offline demo set: layout, determinism, exact gold boxes, content for all three tasks."""

from __future__ import annotations

import ast
import hashlib
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from nova_mlflow.data import demo
from nova_mlflow.errors import InputError


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.build_demo(tmp_path_factory.mktemp("demo") / "set")


@pytest.fixture(scope="module")
def table(demo_set: Path) -> pd.DataFrame:
    return pd.read_csv(demo_set / demo.CSV_NAME, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def generated() -> list[tuple[dict[str, str], demo.Slice]]:
    return demo.generate()


def _digests(root: Path) -> dict[str, str]:
    files = [root / demo.CSV_NAME, *sorted((root / "images").iterdir())]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _boxes(text: str) -> list[tuple[float, float, float, float]]:
    d = ast.literal_eval(text)
    return list(zip(d["x"], d["y"], d["width"], d["height"]))


def test_two_builds_are_byte_identical(demo_set: Path, tmp_path: Path) -> None:
    other = demo.build_demo(tmp_path / "again")
    assert _digests(other) == _digests(demo_set)


def test_table_layout(table: pd.DataFrame, demo_set: Path) -> None:
    assert tuple(table.columns) == demo.COLUMNS
    assert len(table) >= 40
    assert table.filename.is_unique
    assert all(re.fullmatch(r"case9\d{3}_\d{3}\.png", f) for f in table.filename)
    assert sorted(p.name for p in (demo_set / "images").iterdir()) == sorted(table.filename)
    for case_id, rows in table.groupby("case_id"):
        assert 1 <= len(rows) <= 3
        assert sorted(rows.scan_id.astype(int)) == list(range(1, len(rows) + 1))
        for col in ("clinical_history", "final_diagnosis", "title", "differential_diagnosis", "link"):
            assert rows[col].nunique() == 1, (case_id, col)
        assert all(f.startswith(f"{case_id}_") for f in rows.filename)
    assert all(re.fullmatch(r"\d\d\.\d\d\.20\d\d", d) for d in table.publication_date)


def test_captions_name_all_planes_and_sequences(table: pd.DataFrame) -> None:
    captions = table.caption.str.lower()
    for plane in ("axial", "sagittal", "coronal"):
        assert captions.str.startswith(plane).sum() >= 10, plane
    for seq in ("t1-weighted", "t2-weighted", "flair"):
        assert captions.str.contains(seq).any(), seq
    assert captions.str.contains("no other abnormality").any()
    assert captions.str.contains("hypointense").any() and captions.str.contains("hyperintense").any()


def test_images_are_480_grayscale(table: pd.DataFrame, demo_set: Path) -> None:
    for name in table.filename:
        with Image.open(demo_set / "images" / name) as im:
            assert (im.size, im.mode, im.format) == ((480, 480), "L", "PNG")


def test_box_strings_have_the_release_shape(table: pd.DataFrame) -> None:
    for gold_text, rater_text in zip(table.bbox_gold, table.bbox_raters):
        gold, raters = ast.literal_eval(gold_text), ast.literal_eval(rater_text)
        assert list(gold) == ["x", "y", "width", "height"]
        assert list(raters) == ["rater", "x", "y", "width", "height"]
        n = len(gold["x"])
        assert 1 <= n <= 3 and all(len(v) == n for v in gold.values())
        assert all(len(v) == 2 * n for v in raters.values())
        assert set(raters["rater"]) == {"Dr.A", "Dr.B"}
        assert all(type(v) is float for k in ("x", "y", "width", "height") for v in gold[k] + raters[k])


def test_gold_boxes_inside_and_disjoint(table: pd.DataFrame) -> None:
    for text in table.bbox_gold:
        boxes = _boxes(text)
        for x, y, w, h in boxes:
            assert 0 <= x and 0 <= y and x + w <= 480 and y + h <= 480 and 8 <= max(w, h) <= 125
        for i, (x, y, w, h) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1:]:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


def test_gold_box_is_the_lesion_extent(generated, table: pd.DataFrame, demo_set: Path) -> None:
    for (row, sl), (_, csv_row) in zip(generated, table.iterrows()):
        assert row["filename"] == csv_row.filename and row["bbox_gold"] == csv_row.bbox_gold
        on_disk = np.asarray(Image.open(demo_set / "images" / row["filename"]))
        assert np.array_equal(on_disk, sl.image)
        diff = np.abs(sl.image.astype(int) - sl.clean.astype(int))
        near = np.zeros(diff.shape, bool)
        for mask, (x, y, w, h) in zip(sl.masks, _boxes(row["bbox_gold"])):
            rows, cols = np.nonzero(mask)
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x, y, x + w, y + h)
            assert diff[mask].mean() > 25  # clearly visible inside
            near[max(0, int(y) - 25):int(y + h) + 25, max(0, int(x) - 25):int(x + w) + 25] = True
        assert diff[~near].max() <= 1  # and nothing changes away from the lesions


def test_lesions_lie_inside_the_brain(generated) -> None:
    for _, sl in generated:
        head = ndimage.binary_fill_holes(ndimage.gaussian_filter(sl.clean.astype(float), 2) > 8)
        for mask in sl.masks:
            assert head[mask].all()  # the background outside the brain is ~0


def test_diagnoses_shared_between_cases(table: pd.DataFrame) -> None:
    cases = table.groupby("final_diagnosis").case_id.nunique()
    assert cases.size >= 10
    assert (cases >= 2).sum() >= 5
    for diff, final in zip(table.differential_diagnosis, table.final_diagnosis):
        items = [d.strip() for d in diff.split(";")]
        assert final in items and 3 <= len(items) <= 4


def test_project_reader_loads_it_with_derived_fields(demo_set: Path, table: pd.DataFrame) -> None:
    from nova_mlflow.data import load_dataset

    ds = load_dataset(demo_set)
    assert len(ds) == len(table)
    by_name = ds.by_filename()
    for row in table.itertuples():
        case = by_name[row.filename]
        assert len(case.gold_boxes) == len(_boxes(row.bbox_gold))
        assert case.derived.plane and case.derived.sequence and case.derived.age and case.derived.sex
    assert {c.derived.sex for c in ds.cases} == {"female", "male"}


def test_rebuilding_a_complete_root_is_a_no_op(demo_set: Path, monkeypatch) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_set.rglob("*")}
    monkeypatch.setattr(demo, "generate", lambda *a, **k: pytest.fail("regenerated"))
    assert demo.build_demo(demo_set) == demo_set
    assert {p: p.stat().st_mtime_ns for p in demo_set.rglob("*")} == before


def test_unfinished_build_is_replaced_but_foreign_dirs_are_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "generate", lambda *a, **k: [])
    partial = tmp_path / "partial"
    (partial / "images").mkdir(parents=True)
    (partial / demo.CSV_NAME).write_text("half")
    demo.build_demo(partial)
    assert demo.is_complete(partial)
    assert (partial / demo.CSV_NAME).read_text().startswith("filename,caption,")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError):
        demo.build_demo(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_demo_root_uses_the_cache(tmp_path: Path, monkeypatch) -> None:
    built: list[Path] = []
    monkeypatch.setattr(demo, "build_demo", lambda root: built.append(root) or root)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "env"))
    assert demo.demo_root() == tmp_path / "env" / demo.DEMO_VERSION
    assert demo.demo_root(tmp_path / "arg") == tmp_path / "arg" / demo.DEMO_VERSION
    assert built == [tmp_path / "env" / demo.DEMO_VERSION, tmp_path / "arg" / demo.DEMO_VERSION]


def test_histories_vary_within_a_diagnosis(table: pd.DataFrame) -> None:
    per_dx: dict[str, set[str]] = defaultdict(set)
    for row in table.drop_duplicates("case_id").itertuples():
        per_dx[row.final_diagnosis].add(row.clinical_history)
        assert re.search(r"\b\d{1,2}-year-old (woman|man|female|male|girl|boy)\b", row.clinical_history)
    assert all(len(h) == n for n, h in ((table[table.final_diagnosis == d].case_id.nunique(), h)
                                         for d, h in per_dx.items()))

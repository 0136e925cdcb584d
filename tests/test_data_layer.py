"""The readers on the real NOVA metadata and on both published layouts."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from nova_mlflow.data import load_dataset
from nova_mlflow.data.derived import age_of, plane_of, sequence_of, sex_of
from nova_mlflow.schemas import Case

from conftest import good_row, write_dataset


def test_real_metadata_counts_with_placeholder_images(real_metadata, placeholder_images):
    ds = load_dataset(real_metadata, images_dir=placeholder_images)
    assert len(ds) == 906
    assert len({c.case_id for c in ds.cases}) == 281
    assert len({c.final_diagnosis for c in ds.cases}) == 259
    assert sum(len(c.gold_boxes) for c in ds.cases) == 1068
    counts = pd.Series([len(c.gold_boxes) for c in ds.cases]).value_counts().to_dict()
    assert counts == {1: 777, 2: 100, 3: 25, 4: 4}
    assert sum(c.caption is None for c in ds.cases) == 6


def test_real_gold_boxes_are_clipped_to_the_image(real_metadata):
    raw = pd.read_csv(real_metadata / "NOVA_metadata.csv")
    import ast

    overhang = 0
    for s in raw["bbox_gold"]:
        d = ast.literal_eval(s)
        overhang += sum(x + w > 480 or y + h > 480 for x, y, w, h in
                        zip(d["x"], d["y"], d["width"], d["height"]))
    assert overhang == 5  # the fact the clipping exists for
    ds = load_dataset(real_metadata, check_images=False)
    for c in ds.cases:
        for b in c.gold_boxes + c.rater_boxes:
            assert 0 <= b.x1 <= b.x2 <= 480 and 0 <= b.y1 <= b.y2 <= 480


def test_first_real_row_in_detail(real_metadata):
    c = load_dataset(real_metadata, check_images=False).by_filename()["case0183_001.png"]
    assert c.case_id == "case0183" and c.scan_id == 1
    assert c.differential_diagnosis == ["Lhermitte-Duclos disease", "Metastases",
                                        "Medulloblastoma", "Cerebellitis"]
    b = c.gold_boxes[0]
    assert b.x1 == pytest.approx(169.5205535888672)
    assert b.x2 == pytest.approx(169.5205535888672 + 221.2239990234375)
    assert [r.rater for r in c.rater_boxes] == ["Dr.NeuronNinja", "Dr.ScanSleuth"]
    assert c.derived.plane == "axial" and c.derived.age == 60 and c.derived.sex == "female"


@pytest.mark.parametrize("caption,plane,seq", [
    ("Axial FLAIR image shows ...", "axial", "FLAIR"),
    ("Coronal contrast-enhanced T1WIs demonstrates marked enhancement", "coronal", "T1+C"),
    ("Sagittal T2 Flair image showing a mass", "sagittal", "FLAIR"),
    ("MRI T1 coronal brain shows volume loss", "coronal", "T1"),
    ("Axial DWI MRI Brain shows restriction", "axial", "DWI"),
    ("T2-weighted brain MR images", None, "T2"),
    (None, None, None),
])
def test_plane_and_sequence_from_caption(caption, plane, seq):
    assert plane_of(caption) == plane
    assert sequence_of(caption) == seq


@pytest.mark.parametrize("history,age,sex", [
    ("A 60-year-old woman diagnosed with breast cancer", 60, "female"),
    ("65-year-old male patient with gait instability", 65, "male"),
    ("Two monozygotic adolescent male twins", None, "male"),
    ("A 7 year old girl with seizures", 7, "female"),
    ("Patient with headache.", None, None),
])
def test_age_and_sex_from_history(history, age, sex):
    assert age_of(history) == age
    assert sex_of(history) == sex


def _parquet_from_csv_dataset(root, cases: list[Case], shuffle_seed: int = 3):
    """Write the parquet release layout (meta dict, bboxes records) in shuffled row order."""
    rows = []
    for c in cases:
        bboxes = [{"x": b.x1, "y": b.y1, "width": b.width, "height": b.height, "source": "gold"}
                  for b in c.gold_boxes]
        bboxes += [{"x": b.x1, "y": b.y1, "width": b.width, "height": b.height,
                    "source": b.rater} for b in c.rater_boxes]
        rows.append({
            "filename": c.filename, "case_id": c.case_id, "scan_id": c.scan_id,
            "caption_text": c.caption, "image_path": f"images/{c.filename}",
            "meta": {"clinical_history": c.clinical_history, "final_diagnosis": c.final_diagnosis,
                     "differential_diagnosis": "; ".join(c.differential_diagnosis),
                     "title": c.title or ""},
            "bboxes": bboxes or None,
        })
    random.Random(shuffle_seed).shuffle(rows)
    (root / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "data" / "nova-v1.parquet")


def test_parquet_layout_matches_csv_layout_joined_on_filename(tmp_path):
    rows = [good_row(i, scan_id=str(i % 3 + 1)) for i in range(1, 9)]
    rows[2]["bbox_gold"] = "{'x': [10.0, 200.0], 'y': [20.0, 220.0], 'width': [30.0, 40.0], 'height': [30.0, 40.0]}"
    csv_root = write_dataset(tmp_path / "csv", rows)
    from_csv = load_dataset(csv_root)
    pq_root = tmp_path / "pq"
    (pq_root / "images").mkdir(parents=True)
    for c in from_csv.cases:
        (pq_root / "images" / c.filename).write_bytes(c.image_path.read_bytes())
    _parquet_from_csv_dataset(pq_root, from_csv.cases)
    from_pq = load_dataset(pq_root)
    assert from_pq.layout == "parquet"
    a = {c.filename: c.model_dump(exclude={"image_path"}) for c in from_csv.cases}
    b = {c.filename: c.model_dump(exclude={"image_path"}) for c in from_pq.cases}
    assert a == b
    assert from_pq.digest == from_csv.digest  # same content, any layout, any row order


def test_parquet_rows_without_boxes_and_csv_enrichment(tmp_path):
    rows = [good_row(1), good_row(2)]
    csv_root = write_dataset(tmp_path / "both", rows)
    cases = load_dataset(csv_root).cases
    stripped = [c.model_copy(update={"rater_boxes": [], "differential_diagnosis": []}) for c in cases]
    _parquet_from_csv_dataset(csv_root, stripped)
    ds = load_dataset(csv_root)
    assert ds.layout == "parquet+csv"
    got = ds.by_filename()
    for c in cases:  # the CSV fills in what the parquet lacked, matched by filename
        assert got[c.filename].rater_boxes == c.rater_boxes
        assert got[c.filename].differential_diagnosis == c.differential_diagnosis


def test_images_load_lazily(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "d", [good_row(1)]))
    case = ds.cases[0]
    assert "image" not in case.model_dump()  # a Case holds a path, not pixels
    from nova_mlflow.data.images import load_gray

    assert load_gray(case.image_path).shape == (480, 480)


def test_hf_downloads_go_to_the_packages_cache(monkeypatch, tmp_path):
    """hf:// data lives under the one cache folder (platformdirs' on each OS, or
    NOVA_MLFLOW_CACHE), where dataset_root looks for it, not a hard-coded ~/.cache."""
    import platformdirs

    from nova_mlflow.data import dataset_root
    from nova_mlflow.data.hub import hub_cache

    monkeypatch.delenv("NOVA_MLFLOW_CACHE", raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda *a, **k: str(tmp_path / "Caches"))
    assert hub_cache() == dataset_root("hf://c-i-ber/Nova") == tmp_path / "Caches" / "hf"
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "mine"))
    assert hub_cache() == dataset_root("hf://c-i-ber/Nova") == tmp_path / "mine" / "hf"
    assert hub_cache(tmp_path / "given") == tmp_path / "given" / "hf"


def test_hf_spec_without_network_fails_cleanly(monkeypatch):
    from nova_mlflow.errors import InputError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as exc:
        load_dataset("hf://c-i-ber/Nova")
    assert "hf://c-i-ber/Nova" in str(exc.value)
    assert "\n" not in str(exc.value)

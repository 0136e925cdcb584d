"""Paper-faithful counts: 729 distinct captions, 44 truths without a diagnosis, binary F1 variants."""

from __future__ import annotations

import csv

import pytest

from nova_mlflow.metrics.binary_variants import binary_f1_variants, keyword_binary_prf
from nova_mlflow.metrics.caption_counts import distinct_captions, is_missing_caption
from nova_mlflow.metrics.diagnosis_reference import (
    names_no_diagnosis,
    split_by_reference,
)

# --- distinct captions ------------------------------------------------------------------------


def test_distinct_captions_counts_strings_as_written_and_missing_once():
    caps = ["A lesion.", "A lesion.", "a lesion.", "A  lesion.", "A\nlesion.",
            None, float("nan"), "", "  ", "nan", "NaN"]
    # 4 written variants + 1 for all the missing ones
    assert distinct_captions(caps) == 5
    assert distinct_captions(caps, count_missing=False) == 4
    assert distinct_captions([]) == 0
    assert distinct_captions([None, None]) == 1
    assert [is_missing_caption(c) for c in (None, float("nan"), " ", "nan", "Nan.", 0)] == [
        True, True, True, True, False, False]


def test_ground_truth_distinct_captions_is_the_papers_729(real_metadata):
    import pandas as pd

    from nova_mlflow.data import load_dataset

    cases = load_dataset(real_metadata, check_images=False).cases
    assert distinct_captions(c.caption for c in cases) == 729
    assert distinct_captions((c.caption for c in cases), count_missing=False) == 728
    csv_path = real_metadata / "NOVA_metadata.csv"
    assert distinct_captions(pd.read_csv(csv_path)["caption"]) == 729  # NaN for missing
    with csv_path.open(newline="") as f:  # the raw text "nan" for missing
        assert distinct_captions(r["caption"] for r in csv.DictReader(f)) == 729


# --- ground truths that name no diagnosis -----------------------------------------------------

@pytest.mark.parametrize("text", [
    "Final Diagnosis not found.", "final diagnosis NOT FOUND", " Final  diagnosis not found ",
    "Diagnosis: not available", "diagnosis - unknown", "No diagnosis", "No final diagnosis given",
    "Unknown", "n/a", "N/A.", "", "   ", "nan", None, float("nan"), "Pending", "?",
])
def test_placeholders_name_no_diagnosis(text):
    assert names_no_diagnosis(text)


@pytest.mark.parametrize("text", [
    "Gliosarcoma", "Unknown primary tumour with brain metastases", "Diagnosis of exclusion",
    "Creutzfeldt-Jakob disease (not found on biopsy)", "Nonketotic hyperglycinaemia",
    "Not otherwise specified glioma",
])
def test_real_diagnoses_are_kept(text):
    assert not names_no_diagnosis(text)


def test_no_reference_is_44_slices_of_14_cases_leaving_862(real_metadata):
    from nova_mlflow.data import load_dataset

    cases = load_dataset(real_metadata, check_images=False).cases
    scored, no_ref = split_by_reference([c.final_diagnosis for c in cases])
    assert (len(scored), len(no_ref)) == (862, 44)
    assert len({cases[i].case_id for i in no_ref}) == 14
    assert {cases[i].final_diagnosis for i in no_ref} == {"Final Diagnosis not found."}
    assert scored == sorted(set(range(len(cases))) - set(no_ref))


# --- binary F1 candidates ---------------------------------------------------------------------

def test_binary_f1_variants_hand_computed():
    truth = ["abnormal", "abnormal", "abnormal", "normal"]
    pred = ["abnormal", "normal", None, "normal"]
    v = binary_f1_variants(truth, pred)
    assert v["f1_abnormal"] == pytest.approx(2 / (2 + 0 + 2))  # TP 1, FP 0, FN 2
    assert v["f1_normal"] == pytest.approx(2 / (2 + 1 + 0))  # TP 1, FP 1, FN 0
    assert v["f1_macro"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert v["f1_weighted"] == pytest.approx((3 * 1 / 2 + 1 * 2 / 3) / 4)
    assert v["f1_micro"] == pytest.approx(4 / 7)  # pooled TP 2, FP 1, FN 2
    assert v["accuracy"] == pytest.approx(2 / 4)


def test_all_abnormal_truth_gives_f1_two_r_over_one_plus_r():
    truth = ["abnormal"] * 10
    pred = ["abnormal"] + ["normal"] * 9  # r = 0.1 of the answers read abnormal
    v = binary_f1_variants(truth, pred)
    assert v["f1_abnormal"] == pytest.approx(2 * 0.1 / 1.1)
    assert v["f1_normal"] == 0.0 and v["accuracy"] == pytest.approx(0.1)
    assert v["f1_micro"] == pytest.approx(0.1)  # every answer has a status: micro = accuracy
    with pytest.raises(ValueError):
        binary_f1_variants(truth, pred[:3])


def test_keyword_binary_prf_matches_exact_words_pooled_over_the_corpus():
    gts = ["Normal study.", "Abnormal signal", "no abnormality"]
    preds = ["normal brain", "normal and abnormal", ""]
    m = keyword_binary_prf(gts, preds)
    # gold words {normal}, {abnormal}, {} ("abnormality" is another word); predicted
    # {normal}, {normal, abnormal}, {}: TP 2 of 3 predicted, 2 of 2 gold
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(0.8)
    assert keyword_binary_prf([""], [""]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}

"""Paper-faithful counts: 729 distinct captions, 44 truths without a diagnosis, binary F1 variants."""

from __future__ import annotations

import csv

import pytest

from nova_mlflow.metrics.status import keyword_binary_prf
from nova_mlflow.metrics.language import distinct_captions, is_missing_caption
from nova_mlflow.metrics.diagnosis_reference import (
    names_no_diagnosis,
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
    no_ref = [i for i, c in enumerate(cases) if names_no_diagnosis(c.final_diagnosis)]
    assert (len(cases) - len(no_ref), len(no_ref)) == (862, 44)
    assert len({cases[i].case_id for i in no_ref}) == 14
    assert {cases[i].final_diagnosis for i in no_ref} == {"Final Diagnosis not found."}


class _Recorder:
    """An offline matcher that records every pair it is asked about (a judge stand-in)."""

    name = "recorder"

    def __init__(self) -> None:
        from nova_mlflow.metrics.matching import OfflineMatcher

        self.pairs: list[tuple[str, str]] = []
        self._inner = OfflineMatcher()

    def match(self, prediction: str, truth: str):
        return self.match_many([(prediction, truth)])[0]

    def match_many(self, pairs):
        self.pairs += list(pairs)
        return self._inner.match_many(pairs)


def test_scoring_leaves_truths_without_a_diagnosis_out_of_top_k(real_metadata):
    """Every answer names its own truth (placeholders included): top-1 is 862/862, not
    862/906; no_reference is 44; the matcher never sees a placeholder truth."""
    from nova_mlflow.data import load_dataset
    from nova_mlflow.schemas import Answer, Task
    from nova_mlflow.scoring import ScoreContext
    from nova_mlflow.scoring import diagnosis as sd

    cases = load_dataset(real_metadata, check_images=False).cases
    answers = {(c.filename, Task.diagnosis): Answer(filename=c.filename, task=Task.diagnosis,
                                                    text=f"1. {c.final_diagnosis}")
               for c in cases}
    rec = _Recorder()
    ts = sd.score(cases, answers, ScoreContext(), matcher=rec)
    assert ts.metrics["no_reference"] == 44
    assert ts.metrics["top1"] == 1.0 and ts.metrics["top5"] == 1.0
    assert not any(names_no_diagnosis(t) for _, t in rec.pairs)
    assert len(rec.pairs) >= 862  # one truth or more per case with a reference
    half = {k: a for i, (k, a) in enumerate(answers.items()) if i % 2 == 0}
    ts = sd.score(cases, half, ScoreContext(), matcher=_Recorder())
    answered_refs = sum(1 for i, c in enumerate(cases)
                        if i % 2 == 0 and not names_no_diagnosis(c.final_diagnosis))
    assert ts.metrics["top1"] == pytest.approx(answered_refs / 862)
    table = ts.table
    assert table["has_reference"].sum() == 862
    assert table.loc[table["has_reference"] == 0, "top1"].isna().all()


def test_ground_truth_unique_captions_of_a_scored_run_is_729(real_metadata):
    from nova_mlflow.data import load_dataset
    from nova_mlflow.scoring import ScoreContext
    from nova_mlflow.scoring import captioning as sc

    cases = load_dataset(real_metadata, check_images=False).cases
    ts = sc.score(cases, {}, ScoreContext())
    assert ts.metrics["gt_unique_captions"] == 729
    assert ts.metrics["gt_unique_captions_normalized"] == 724


# --- binary F1 candidates ---------------------------------------------------------------------


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

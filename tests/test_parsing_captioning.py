"""A corpus of odd and malformed caption answers: each classified, none raising."""

from __future__ import annotations

import pytest

from nova_mlflow.parsing import parse_answer
from nova_mlflow.schemas import Task

OK = [
    ("Axial FLAIR image shows a hyperintense lesion in the right frontal lobe.", "Axial FLAIR image shows a hyperintense lesion in the right frontal lobe."),
    ("  Axial   T2 image\\n shows  edema. ", None),
    ("Axial T2 image\nshows vasogenic edema.", "Axial T2 image shows vasogenic edema."),
    ('{"plane": "axial", "sequence": "FLAIR", "caption": "Axial FLAIR shows a lesion."}', "Axial FLAIR shows a lesion."),
    ('```json\n{"caption": "Coronal T1 shows a mass."}\n```', "Coronal T1 shows a mass."),
    ('{"description": "Sagittal T1 image, normal."}', "Sagittal T1 image, normal."),
    ('{"findings": "Ring-enhancing lesion"}', "Ring-enhancing lesion"),
    ('{"caption": "Axial DWI shows restricted diffusion in the left', "Axial DWI shows restricted diffusion in the left"),
    ('{"plane": "axial", "sequence": "T2"}', "axial T2"),
    ("The image is unremarkable.", None),
    ("No abnormality is seen.", None),
    ("I cannot exclude a small infarct; axial DWI shows a bright focus.", None),
    ("I'm sorry, but the axial T2 image shows a hyperintense mass.", None),
    ("MRI brain, axial FLAIR: multiple periventricular white matter hyperintensities.", None),
    ("Findings: 1) mass effect 2) midline shift", None),
    ("**Axial T1 post-contrast**: enhancing lesion.", None),
    ("T2", None),
    ("lesion", None),
    ("Normal brain MRI.", None),
    ("<think>looking</think> Axial FLAIR shows a lesion.", None),
    ("Axial FLAIR image shows a hyperintense lesion. " * 200, None),
    ("Coronal T2 - cystic lesion with fluid level", None),
    ("Sagittal T1: Chiari malformation with tonsillar descent", None),
    ("axial flair hyperintensity bilateral thalami", None),
    ("Image: axial; sequence: T2; finding: mass", None),
    ("[\"Axial FLAIR\", \"lesion\"]", None),
    ("  \t Axial T2 \t ", "Axial T2"),
    ("Aксиальное T2 изображение", None),  # non-English is still a caption
    ("Axial T2 — hyperintense lesion (≈2 cm) in the pons.", None),
    ("1. Axial FLAIR\n2. lesion in the right frontal lobe", None),
]
FAIL = [
    ("", "empty"),
    ("   \n\t ", "empty"),
    (None, "empty"),
    ("I'm sorry, but I can't help with interpreting medical images.", "refusal"),
    ("I am unable to provide a medical interpretation of this image.", "refusal"),
    ("As an AI, I cannot provide diagnoses. Please consult a qualified radiologist.", "refusal"),
    ("I cannot analyze this.", "refusal"),
    ("Sorry, I can't do that. I'm not able to view images.", "refusal"),
    ("Unable to provide a description.", "refusal"),
    ("I can't assist with that request.", "refusal"),
    ("{}", "without a caption"),
    ('{"caption": ""}', "without a caption"),
    ("```json\n{}\n```", "without a caption"),
    ("I'm sorry, I cannot comply.", "refusal"),
    ("As an AI language model I am not able to give medical advice.", "refusal"),
    ("i cant help with that, consult a medical professional", "refusal"),
    ("I am not able to see the picture.", "refusal"),
    ("Please consult a qualified healthcare provider.", "refusal"),
    ("I'm sorry.", "refusal"),
    ("I cannot provide that.", "refusal"),
]


@pytest.mark.parametrize("text,expected", OK)
def test_captions_read(text, expected):
    p = parse_answer(Task.captioning, text)
    assert p.ok, p.error
    assert p.prediction.text == (expected if expected is not None else " ".join(text.split()))


@pytest.mark.parametrize("text,kind", FAIL)
def test_caption_failures_are_classified(text, kind):
    p = parse_answer(Task.captioning, text)
    assert not p.ok and kind in p.error


def test_corpus_size():
    assert len(OK) + len(FAIL) >= 50

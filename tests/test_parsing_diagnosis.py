"""Diagnosis answers as models really write them: each odd answer is read or classified.

Every entry of CORPUS says what the parser must return: the ranked diagnoses, or the class of
failure (empty / refusal / none given / none found). Nothing may raise.
"""

from __future__ import annotations

import pytest

from nova_mlflow.parsing import parse_answer, parse_diagnoses
from nova_mlflow.schemas import Task

EMPTY, REFUSAL, NONE_GIVEN, NOT_FOUND = ("empty answer", "refusal", "no diagnosis given",
                                         "no diagnosis found")
GBM, MET, LYM = "Glioblastoma", "Metastasis", "Lymphoma"

CORPUS: list[tuple[str, str | None, list[str] | str]] = [
    # (id, answer text, expected diagnoses or failure class)
    ("numbered", "1. Glioblastoma\n2. Metastasis\n3. Lymphoma", [GBM, MET, LYM]),
    ("numbered-paren", "1) Glioblastoma\n2) Metastasis", [GBM, MET]),
    ("numbered-wrapped", "(1) Glioblastoma\n(2) Metastasis", [GBM, MET]),
    ("inline-numbered", "1. Glioblastoma 2. Metastasis 3. Lymphoma 4. Abscess 5. Tumefactive MS",
     [GBM, MET, LYM, "Abscess", "Tumefactive MS"]),
    ("six-items", "1. A1\n2. B2\n3. C3\n4. D4\n5. E5\n6. F6", ["A1", "B2", "C3", "D4", "E5"]),
    ("bullets", "- Glioblastoma\n- Metastasis", [GBM, MET]),
    ("star-bullets", "* Glioblastoma\n* Metastasis", [GBM, MET]),
    ("unicode-bullets", "\u2022 Glioblastoma\n\u2022 Metastasis", [GBM, MET]),
    ("letters", "a. Glioblastoma\nb. Metastasis", [GBM, MET]),
    ("bold-items", "1. **Glioblastoma**\n2. **Metastasis**", [GBM, MET]),
    ("bold-with-reason", "1. **Glioblastoma**: ring enhancement and necrosis\n"
                         "2. **Metastasis** - multiple lesions at the grey-white junction",
     [GBM, MET]),
    ("dash-explanation", "1. Glioblastoma - heterogeneous enhancing mass with necrosis\n"
                         "2. Metastasis - less likely given the single lesion", [GBM, MET]),
    ("probabilities", "1. Glioblastoma (60%)\n2. Metastasis (25%)\n3. Lymphoma (15%)",
     [GBM, MET, LYM]),
    ("hedge-parens", "1. Glioblastoma (most likely)\n2. Lymphoma (less likely)", [GBM, LYM]),
    ("keeps-acronym", "1. Acute disseminated encephalomyelitis (ADEM)\n2. Multiple sclerosis",
     ["Acute disseminated encephalomyelitis (ADEM)", "Multiple sclerosis"]),
    ("keeps-commas-in-items", "1. Glioblastoma, IDH-wildtype\n2. Astrocytoma, WHO grade III",
     ["Glioblastoma, IDH-wildtype", "Astrocytoma, WHO grade III"]),
    ("sub-bullets", "1. Glioblastoma\n   - ring enhancement\n   - necrosis\n2. Metastasis",
     [GBM, MET]),
    ("preamble-and-explanation",
     "Based on the history and the findings, my ranked differential is:\n\n1. Glioblastoma\n"
     "2. Metastasis\n\nExplanation: the lesion is solitary and heterogeneous.", [GBM, MET]),
    ("label-then-list", "Most likely diagnosis: Glioblastoma\nDifferential diagnoses:\n"
                        "1. Metastasis\n2. Lymphoma", [GBM, MET, LYM]),
    ("bold-labels", "**Most likely:** Glioblastoma\n**Alternatives:** Metastasis, Lymphoma, Abscess",
     [GBM, MET, LYM, "Abscess"]),
    ("one-line-labels", "Primary diagnosis: Multiple sclerosis. Differential: ADEM, NMOSD, "
                        "Susac syndrome, CNS vasculitis.",
     ["Multiple sclerosis", "ADEM", "NMOSD", "Susac syndrome", "CNS vasculitis"]),
    ("diagnosis-n", "Diagnosis 1: Glioblastoma\nDiagnosis 2: Metastasis", [GBM, MET]),
    ("top-n", "Top-1: Glioblastoma\nTop-2: Metastasis", [GBM, MET]),
    ("answer-label", "Answer: Glioblastoma", [GBM]),
    ("numbered-with-labels", "1. Most likely: Glioblastoma\n2. Alternative: Metastasis",
     [GBM, MET]),
    ("markdown-table", "| Rank | Diagnosis | Reason |\n|---|---|---|\n| 1 | Glioblastoma | necrosis |\n"
                       "| 2 | Metastasis | multiple |", [GBM, MET]),
    ("json-list", '["Glioblastoma", "Metastasis"]', [GBM, MET]),
    ("json-fenced", '```json\n{"diagnoses": ["Glioblastoma", "Metastasis"]}\n```', [GBM, MET]),
    ("json-primary-alternatives", '{"most_likely": "Glioblastoma", "alternatives": '
                                  '["Metastasis", "Lymphoma"]}', [GBM, MET, LYM]),
    ("json-ranked-objects", '{"diagnoses": [{"rank": 2, "diagnosis": "Metastasis"}, '
                            '{"rank": 1, "diagnosis": "Glioblastoma"}]}', [GBM, MET]),
    ("json-name-objects", '[{"name": "Glioblastoma", "confidence": 0.7}, '
                          '{"name": "Metastasis", "confidence": 0.2}]', [GBM, MET]),
    ("json-pairs", '[["Glioblastoma", 0.7], ["Metastasis", 0.2]]', [GBM, MET]),
    ("json-truncated", '{"diagnoses": ["Glioblastoma", "Metastasis", "Lymph', [GBM, MET]),
    ("json-trailing-prose", '{"diagnoses": ["Glioblastoma"]}\nI hope this helps.', [GBM]),
    ("json-unknown-key", '{"impression": "Glioblastoma"}', [GBM]),
    ("json-empty-list", '{"diagnoses": []}', NOT_FOUND),
    ("prose", "The most likely diagnosis is glioblastoma. Other possibilities include metastasis, "
              "primary CNS lymphoma, and cerebral abscess.",
     ["glioblastoma", "metastasis", "primary CNS lymphoma", "cerebral abscess"]),
    ("prose-consistent", "The findings are most consistent with multiple sclerosis.",
     ["multiple sclerosis"]),
    ("prose-differentials", "Differential diagnoses include glioblastoma, metastasis and lymphoma.",
     ["glioblastoma", "metastasis", "lymphoma"]),
    ("bare-name", "Glioblastoma", [GBM]),
    ("bare-name-period", "Glioblastoma.", [GBM]),
    ("semicolons", "glioblastoma; metastasis; lymphoma", ["glioblastoma", "metastasis", "lymphoma"]),
    ("comma-list", "Glioblastoma, metastasis, lymphoma", [GBM, "metastasis", "lymphoma"]),
    ("comma-qualifier", "Glioblastoma, WHO grade 4, metastasis, lymphoma",
     ["Glioblastoma, WHO grade 4", "metastasis", "lymphoma"]),
    ("duplicates", "1. Glioblastoma\n2. glioblastoma\n3. Metastasis", [GBM, MET]),
    ("think-tags", "<think>maybe lymphoma? no.</think>\n1. Glioblastoma\n2. Metastasis", [GBM, MET]),
    ("think-unclosed", "<think>the lesion enhances, so perhaps", EMPTY),
    ("crlf", "1. Glioblastoma\r\n2. Metastasis\r\n", [GBM, MET]),
    ("tabs-and-spaces", "\t1.\tGlioblastoma\n\t2.\tMetastasis", [GBM, MET]),
    ("unicode-names", "1. Baló concentric sclerosis\n2. Sjögren syndrome",
     ["Baló concentric sclerosis", "Sjögren syndrome"]),
    ("curly-quotes", "1. \u201cGlioblastoma\u201d\n2. \u201cMetastasis\u201d", [GBM, MET]),
    ("none", None, EMPTY),
    ("empty", "", EMPTY),
    ("whitespace", "  \n\t ", EMPTY),
    ("refusal", "I cannot provide a medical diagnosis. Please consult a qualified physician.",
     REFUSAL),
    ("refusal-sorry", "I'm sorry, but I can't help with diagnosing medical images.", REFUSAL),
    ("n/a", "N/A", NONE_GIVEN),
    ("unknown", "Unknown.", NONE_GIVEN),
    ("dashes", "---", NONE_GIVEN),
    ("long-prose", "The image shows a hyperintense lesion in the right frontal lobe with surrounding "
                   "signal change and mild mass effect on the adjacent ventricle, and further "
                   "imaging with contrast would be needed to characterise it properly.", NOT_FOUND),
    ("only-numbers", "1. 2. 3.", NOT_FOUND),
    ("json-no-strings", "[1, 2, 3]", NOT_FOUND),
    ("broken-brackets", "[[[{{{", NOT_FOUND),
    ("emoji", "\U0001f9e0\U0001f914", NOT_FOUND),
    ("huge", "glioblastoma " * 5000, NOT_FOUND),
]


def _classify(p) -> list[str] | str:
    if p.ok:
        return list(p.prediction.diagnoses)
    for cls in (EMPTY, REFUSAL, NONE_GIVEN, NOT_FOUND):
        if p.error.startswith(cls):
            return cls
    return f"unclassified: {p.error}"


def test_corpus_is_large_and_covers_every_failure_class():
    assert len(CORPUS) >= 50
    assert len({c[0] for c in CORPUS}) == len(CORPUS)
    kinds = {e if isinstance(e, str) else "ok" for _, _, e in CORPUS}
    assert kinds == {"ok", EMPTY, REFUSAL, NONE_GIVEN, NOT_FOUND}


@pytest.mark.parametrize("text,expected", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_corpus(text, expected):
    p = parse_answer(Task.diagnosis, text)
    assert p.ok != (p.error is not None)
    assert _classify(p) == expected
    if p.ok:
        assert 1 <= len(p.prediction.diagnoses) <= 5
        assert all(d == d.strip() and d for d in p.prediction.diagnoses)


def test_parse_diagnoses_never_raises_on_mangled_corpus():
    """Every corpus answer cut at every 7th character, and reversed: classified, no raise."""
    for _, text, _ in CORPUS:
        if not text:
            continue
        for cut in list(range(0, min(len(text), 400), 7)) + [len(text)]:
            for t in (text[:cut], text[cut:], text[::-1][:cut]):
                p = parse_diagnoses(t)
                assert p.ok != (p.error is not None)
                assert isinstance(_classify(p), (list, str))
                assert not str(_classify(p)).startswith("unclassified")

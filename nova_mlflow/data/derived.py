"""Fields NOVA does not publish, read from its free text (marked `derived` in Case).

Plane and sequence come from the caption, age and sex from the clinical history. These are
regular-expression readings meant for splitting results (by plane, by sequence), not labels.
"""

from __future__ import annotations

import re

from nova_mlflow.schemas import Derived

_PLANES = {
    "axial": r"\b(axial|transverse)\b",
    "sagittal": r"\bsagittal\b",
    "coronal": r"\bcoronal\b",
}
# Most specific first: "T2 FLAIR" is FLAIR, "T1 ... contrast" is T1+C.
_SEQUENCES = [
    ("FLAIR", r"\bflair\b"),
    ("DWI", r"\b(dwi|diffusion[- ]weighted|diffusion)\b"),
    ("SWI", r"\b(swi|susceptibility[- ]weighted)\b"),
    ("GRE", r"\b(gre|gradient[- ]echo|t2\*)"),
    ("ADC", r"\badc\b"),
    ("T1+C", r"\bt1[- ]?(w|wi|weighted)?\b[^.]{0,40}\b(contrast|gadolinium|post[- ]?gad|enhanced|\+c)\b"
             r"|\b(contrast[- ]enhanced|post[- ]?contrast|gadolinium[- ]enhanced)\b[^.]{0,20}\bt1"),
    ("T2", r"\bt2[- ]?(w|wi|weighted)?\b"),
    ("T1", r"\bt1[- ]?(w|wi|weighted)?\b"),
]
_SPECIFIC = _SEQUENCES[:5]
_GENERIC = _SEQUENCES[5:]
_AGE = re.compile(r"\b(\d{1,3})[- ](?:year|yr)s?[- ]old\b|\baged? (\d{1,3})\b|\b(\d{1,3}) ?(?:y/?o|yo)\b", re.I)
_FEMALE = re.compile(r"\b(woman|female|girl|lady|mother|she|her)\b", re.I)
_MALE = re.compile(r"\b(man|male|boy|gentleman|father|he|his)\b", re.I)


def plane_of(caption: str | None) -> str | None:
    """First plane named in the caption (captions often name one)."""
    if not caption:
        return None
    text = caption.lower()
    found = [(m.start(), name) for name, pat in _PLANES.items() if (m := re.search(pat, text))]
    return min(found)[1] if found else None


def sequence_of(caption: str | None) -> str | None:
    """Specific sequences (FLAIR, DWI, ...) beat T1/T2; within a group the earliest mention wins."""
    if not caption:
        return None
    text = caption.lower()
    for group in (_SPECIFIC, _GENERIC):
        hits = [(m.start(), name) for name, pat in group if (m := re.search(pat, text))]
        if hits:
            return min(hits)[1]
    return None


def age_of(history: str | None) -> int | None:
    if not history:
        return None
    m = _AGE.search(history)
    if not m:
        return None
    age = int(next(g for g in m.groups() if g))
    return age if 0 <= age <= 120 else None


def sex_of(history: str | None) -> str | None:
    """The sex word that appears first wins ("a man whose mother ..." is male)."""
    if not history:
        return None
    f, m = _FEMALE.search(history), _MALE.search(history)
    if f and (not m or f.start() < m.start()):
        return "female"
    if m:
        return "male"
    return None


def derive(caption: str | None, history: str | None) -> Derived:
    return Derived(
        plane=plane_of(caption),
        sequence=sequence_of(caption),
        age=age_of(history),
        sex=sex_of(history),
    )

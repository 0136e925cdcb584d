"""Which ground-truth diagnoses name no diagnosis at all (NOVA: 44 slices of 14 cases). Pure.

Why: 44 NOVA slices (14 cases) carry the final diagnosis "Final Diagnosis not found." (the
Eurorad page had none). No answer can match such a truth, so scoring it counts a guaranteed
miss: those cases are left out of top-1/top-5, coverage and entropy, counted apart as
`diagnosis/no_reference`, and never sent to the judge (862 of 906 slices remain).

Rule (`names_no_diagnosis`): after lowercasing, collapsing whitespace and dropping surrounding
punctuation, the text is empty, a null marker (nan, none, null, n/a, na, -, ?), or a
placeholder sentence: an optional "final"/"no" + "diagnosis" head, an optional ":" or "-",
and a "not found / not available / not known / not given / not stated / not provided /
unknown / pending / missing / unavailable / undetermined" tail, e.g. "Final Diagnosis not
found.", "diagnosis: unknown", "No diagnosis", "Diagnosis not available". The whole text must
be such a placeholder: "Unknown primary tumour" or "Diagnosis of exclusion" name a diagnosis
and are kept. On NOVA the only string that matches is "Final Diagnosis not found." (44 rows).
"""

from __future__ import annotations

import math
import re

_NULLS = frozenset({"", "nan", "none", "null", "n/a", "na", "-", "--", "?"})
_TAIL = (r"(?:not\s+(?:found|available|known|given|stated|provided|specified|reported)"
         r"|unknown|pending|missing|unavailable|undetermined|n/?a)")
_PLACEHOLDER = re.compile(
    rf"^(?:(?:final\s+)?diagnosis\s*[:\-]?\s*{_TAIL}"
    rf"|no\s+(?:final\s+)?diagnosis(?:\s+(?:found|available|given|stated|provided))?"
    rf"|{_TAIL})$"
)


def _normalise(text: str) -> str:
    s = " ".join(text.lower().split())
    return s.strip(" .;:!,")


def names_no_diagnosis(truth: object) -> bool:
    """True when the ground-truth diagnosis is missing or a 'not found'-style placeholder."""
    if truth is None or (isinstance(truth, float) and math.isnan(truth)):
        return True
    s = _normalise(str(truth))
    return s in _NULLS or bool(_PLACEHOLDER.match(s))

"""Distinct captions counted as the NOVA paper counts them (Figure 5: 729 ground-truth captions). Pure.

Why apart from language.py's `unique_captions`: that count compares token sequences (case,
punctuation and spacing ignored) and leaves missing captions out, which gives 724 on NOVA.
The paper's 729 is reproduced by counting the caption strings exactly as written and the
missing caption as one more value:

- 728 distinct non-missing strings among the 900 written captions: case, punctuation and
  whitespace all count, so "Interval\\ndevelopment" and "Interval development" (case0070) or a
  doubled space (case0063) make different captions; no string in NOVA differs from another
  only by leading/trailing whitespace, so stripping would not change the figure;
- + 1 for the 6 missing captions (the CSV writes them as the text "nan"; pandas reads NaN and
  `Series.nunique(dropna=False)` counts them as one value) = 729.

A caption is *missing* when it is None, a float NaN, or a string that is empty/blank or reads
"nan" (any case): the ways a missing value reaches us through pandas, the csv module or our
loader. All missing captions together count once, and only when `count_missing` is true.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

_MISSING_TEXTS = frozenset({"", "nan"})


def is_missing_caption(caption: object) -> bool:
    """None, NaN, a blank string or the text "nan" (how pandas writes a missing cell)."""
    if caption is None:
        return True
    if isinstance(caption, float):
        return math.isnan(caption)
    if isinstance(caption, str):
        return caption.strip().lower() in _MISSING_TEXTS
    return False


def distinct_captions(captions: Iterable[object], *, count_missing: bool = True) -> int:
    """Number of distinct caption strings as written; all missing ones count as one value."""
    seen: set[str] = set()
    any_missing = False
    for c in captions:
        if is_missing_caption(c):
            any_missing = True
        else:
            seen.add(str(c))
    return len(seen) + (1 if count_missing and any_missing else 0)

"""Task 3 scoring by normalised exact match (the offline path; the LLM judge comes later).

Normalisation: lower case, punctuation to spaces, whitespace collapsed. Top-k is the share
of cases whose ground truth equals one of the first k predictions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_PUNCT = re.compile(r"[^\w\s]+")


def normalize(label: str) -> str:
    s = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return " ".join(_PUNCT.sub(" ", s.lower()).split())


def rank_of_truth(predictions: Sequence[str], truth: str) -> int | None:
    """1-based rank of the first prediction equal to the truth after normalisation."""
    t = normalize(truth)
    for i, p in enumerate(predictions, start=1):
        if normalize(p) == t:
            return i
    return None


def top_k(ranks: Sequence[int | None], k: int) -> float:
    """ranks: one entry per case (None = not found / unanswered), all cases counted."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)

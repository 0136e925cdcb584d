"""Language statistics of a set of captions (the paper's Figure 5), and the word tokeniser.

Why one plain tokeniser: vocabulary size and caption length only compare across models if
every caption is cut into words the same way, and a rule a reader can redo by hand beats a
trained tokeniser (nltk's punkt is not installed here anyway).

Tokenisation (`words`): lowercase the text, then every maximal run of letters and digits is
one word (regex ``[^\\W_]+``, Unicode-aware); everything else (spaces, punctuation, hyphens,
slashes, "+", "*") separates words. So "T2-weighted" -> ["t2", "weighted"], "T1+Gd" ->
["t1", "gd"], "FLAIR" -> ["flair"], "(A)" -> ["a"], "19 x 25" -> ["19", "x", "25"]. Numbers and
panel letters count as words: the statistics describe the text as written.

- vocab_size: number of distinct words over all captions of the set.
- unique_captions: number of distinct caption strings exactly as written, all missing or empty
  ones counting as one value, as the paper counts them (729 on NOVA's ground truth).
- unique_captions_normalized: number of distinct captions, two captions being the same when
  their word sequences are equal (so case, punctuation and spacing do not make a caption
  "new"); empty texts left out (724 on NOVA's ground truth).
- mean_words: mean number of words per caption.

Apart from unique_captions, only real captions count: an empty or missing text is not a
caption (an unanswered case is counted by the task's status counts instead).
"""

from __future__ import annotations

import re
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")


def words(text: str | None) -> list[str]:
    """The plain tokenisation described above; None -> []."""
    return _WORD.findall(text.lower()) if text else []


@dataclass(frozen=True)
class LanguageStats:
    n_captions: int
    vocab_size: int
    unique_captions: int  # distinct strings as written, missing ones as one value (the paper's)
    unique_captions_normalized: int  # distinct token sequences of the non-empty texts
    mean_words: float
    word_counts: tuple[int, ...]  # one per caption, for the length distribution

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}vocab_size": float(self.vocab_size),
                f"{prefix}unique_captions": float(self.unique_captions),
                f"{prefix}unique_captions_normalized": float(self.unique_captions_normalized),
                f"{prefix}mean_words": self.mean_words}


def language_stats(texts: Iterable[str | None]) -> LanguageStats:
    """Statistics over the non-empty texts (those with at least one word); the paper's unique
    captions over all texts given (distinct_captions)."""
    given = list(texts)
    tokenised: list[Sequence[str]] = [w for w in (words(t) for t in given) if w]
    counts = tuple(len(w) for w in tokenised)
    return LanguageStats(
        n_captions=len(tokenised),
        vocab_size=len({w for ws in tokenised for w in ws}),
        unique_captions=distinct_captions(given),
        unique_captions_normalized=len({tuple(ws) for ws in tokenised}),
        mean_words=sum(counts) / len(counts) if counts else 0.0,
        word_counts=counts,
    )


# --- the paper's count of unique captions (Figure 5: 729 ground-truth captions) -----------
# The token-sequence count above ignores case, punctuation and spacing and leaves missing
# captions out: 724 on NOVA. The paper's 729 counts the caption strings exactly as written
# (728 distinct among the 900 written ones: "Interval\ndevelopment" vs "Interval development"
# in case0070, a doubled space in case0063) plus one value for all missing captions (6 in
# NOVA; the CSV writes them "nan", pandas `nunique(dropna=False)` counts them once).

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


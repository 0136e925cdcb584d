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
- unique_captions: number of distinct captions, two captions being the same when their word
  sequences are equal (so case, punctuation and spacing do not make a caption "new").
- mean_words: mean number of words per caption.

Only real captions count: an empty or missing text is not a caption (an unanswered case is
counted by the task's status counts instead).
"""

from __future__ import annotations

import re
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
    unique_captions: int
    mean_words: float
    word_counts: tuple[int, ...]  # one per caption, for the length distribution

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}vocab_size": float(self.vocab_size),
                f"{prefix}unique_captions": float(self.unique_captions),
                f"{prefix}mean_words": self.mean_words}


def language_stats(texts: Iterable[str | None]) -> LanguageStats:
    """Statistics over the non-empty texts (those with at least one word)."""
    tokenised: list[Sequence[str]] = [w for w in (words(t) for t in texts) if w]
    counts = tuple(len(w) for w in tokenised)
    return LanguageStats(
        n_captions=len(tokenised),
        vocab_size=len({w for ws in tokenised for w in ws}),
        unique_captions=len({tuple(ws) for ws in tokenised}),
        mean_words=sum(counts) / len(counts) if counts else 0.0,
        word_counts=counts,
    )

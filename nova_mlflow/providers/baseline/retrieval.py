"""Diagnosis by text retrieval over other cases: the diagnosis baseline.

Why: NOVA's diagnosis task gives a clinical history and an image; a model that only matches
the history against other cases' histories and captions is the floor an image-reading model
should beat. Retrieval is leave-one-case-out: every slice of the queried case is excluded,
since slices of one case share the history and the diagnosis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

Document = tuple[str, str, str, str]  # doc_id, group (case_id), text, label (final diagnosis)


class RetrievalIndex:
    """TF-IDF (lowercase, English stop words, 1-2 grams, sublinear tf) over documents.

    The IDF weights are fitted on all documents, the queried case's included: they use no
    labels, so this leaks nothing about the answer.
    """

    def __init__(self, documents: Sequence[Document]) -> None:
        self.ids = [str(d[0]) for d in documents]
        self.groups = np.array([str(d[1]) for d in documents], dtype=object)
        self.labels = np.array([str(d[3]) for d in documents], dtype=object)
        self._vectorizer: TfidfVectorizer | None = TfidfVectorizer(
            lowercase=True, stop_words="english", ngram_range=(1, 2), sublinear_tf=True)
        try:
            self._matrix = self._vectorizer.fit_transform([str(d[2]) for d in documents])
        except ValueError:  # no documents, or nothing but stop words
            self._vectorizer, self._matrix = None, None

    def similarities(self, text: str) -> np.ndarray:
        """Cosine similarity of `text` with every document (rows are L2-normalised)."""
        if self._vectorizer is None:
            return np.zeros(len(self.ids))
        query = self._vectorizer.transform([text])
        return np.asarray((self._matrix @ query.T).todense()).ravel()

    def rank(self, text: str, exclude_group: str, k: int = 5) -> list[str]:
        """Up to k distinct labels, most similar first (a label scores its best document).

        Labels with no similar document are filled in by how many other cases carry them
        (ties by name), so the answer has k items whenever k labels exist outside the group.
        """
        keep = self.groups != str(exclude_group)
        sims = self.similarities(text)
        best: dict[str, float] = {}
        for label, sim in zip(self.labels[keep], sims[keep]):
            if sim > 0 and sim > best.get(label, 0.0):
                best[label] = float(sim)
        ranked = sorted(best, key=lambda lab: (-best[lab], lab))
        cases = Counter(label for label, _ in set(zip(self.labels[keep], self.groups[keep])))
        fill = sorted((lab for lab in cases if lab not in best), key=lambda lab: (-cases[lab], lab))
        return (ranked + fill)[:max(k, 0)]

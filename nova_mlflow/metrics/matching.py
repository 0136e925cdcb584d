"""Matching a predicted diagnosis to the truth: the `Matcher` interface and the offline rules.

A matcher answers one question, "does this prediction name that diagnosis?", with a
`Verdict(match, reason)`. The offline matcher here is used by `--judge none` and the
baseline; an LLM judge (the paper used GPT-4o) implements the same interface, and its
`match_many` can batch, cache and parallelise the calls. Nothing here does I/O.

Offline rules (normalisation and word sets: nova_mlflow/metrics/diagnosis.py), built to miss a
true match rather than claim a false one:
  1. equal normalised strings match ("Balo's concentric sclerosis." = "Baló's ..."), unless
     the truth has no distinctive word at all ("Final Diagnosis not found." matches nothing);
  2. words are aligned exactly or as typos. Fuzzy threshold: same first 3 letters, both
     >= 6 letters, at most one edit (insertion, deletion, substitution, adjacent swap); two
     edits only when both have >= 10 letters and the same last 3 letters ("striatopathy" ~
     "striopathy", not "metastatic" ~ "metastasis"); never across opposed prefixes
     (hyper/hypo, micro/macro, intra/extra, ...) nor for the `CONFUSABLE` pairs;
  3. never a match: numbers or type letters that differ (type 1 / type 2, NF1 / NF2,
     Niemann-Pick A / C, grade 2 / 4), opposed qualifiers (primary / secondary, acute /
     chronic), or when each side has a distinctive word the other lacks ("cerebral abscess"
     / "cerebral metastases", "tuberculous" / "bacterial meningitis");
  4. equal distinctive-word sets match ("Lymphoma" = "primary CNS lymphoma": primary and
     CNS are generic words, documented choice; "GBM" = "glioblastoma multiforme");
  5. a difference in specificity matches: one side's distinctive words a strict subset of
     the other's ("glioblastoma" / "glioblastoma, IDH-wildtype", "meningioma" / "olfactory
     groove meningioma"), provided the smaller side (a) is not only broad class nouns
     ("encephalitis" does not match "herpes simplex encephalitis", "cyst" not "arachnoid
     cyst"), (b) shares a word with the head of the larger side ("hydrocephalus" does not
     match "tuberculoma with resultant hydrocephalus", "Sjogren syndrome" does not match
     "pachymeningitis in Sjogren's syndrome") and (c) has no qualifier the larger side lacks
     ("primary lateral sclerosis" does not match "amyotrophic lateral sclerosis");
  6. with aliases ("X (ACRONYM)"), any pair of aliases matching is a match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

from nova_mlflow.metrics.diagnosis import (
    CLASS_NOUNS,
    OPPOSED,
    Alias,
    analyse,
    closeness,
    distinctive_words,
    normalize,
)


@dataclass(frozen=True)
class Verdict:
    """One matching decision and why: what every matcher (offline or judge) returns."""

    match: bool
    reason: str


@runtime_checkable
class Matcher(Protocol):
    """Decides whether a predicted diagnosis names the true one."""

    name: str

    def match(self, prediction: str, truth: str) -> Verdict: ...

    def match_many(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """One verdict per (prediction, truth) pair, in order (a judge batches these).

        A matcher with `takes_cases = True` (the LLM judge) is also given `cases=`, the case
        each pair comes from, to name them in its traces.
        """
        ...


class OfflineMatcher:
    """The rule-based matcher of this module: free, deterministic, conservative."""

    name = "offline"

    def match(self, prediction: str, truth: str) -> Verdict:
        return offline_verdict(prediction, truth)

    def match_many(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        return [offline_verdict(p, t) for p, t in pairs]


def matcher_for(judge: str) -> Matcher:
    """The matcher named by `--judge`: "none" is the offline matcher.

    The LLM judge plugs in here (a Matcher built from the provider layer).
    """
    if judge in ("none", "offline", ""):
        return OfflineMatcher()
    raise ValueError(f"judge {judge!r} is not available: only the offline matcher ('none')")


_OPPOSED_PREFIXES = (("hyper", "hypo"), ("micro", "macro"), ("intra", "extra"),
                     ("supra", "infra"), ("supra", "sub"), ("pre", "post"), ("endo", "exo"),
                     ("mono", "poly"), ("uni", "bi"), ("hemi", "pan"), ("ante", "retro"))
CONFUSABLE = frozenset(frozenset(p) for p in (
    ("myelopathy", "myelinopathy"), ("aphasia", "aphagia"), ("dysphasia", "dysphagia"),
    ("chordoid", "choroid"), ("fibroma", "fibrosa"), ("racemase", "racemose"),
    ("neuronopathy", "neuropathy"), ("simple", "simplex"), ("cystic", "cystis")))


def _edits(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), for short words."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


@lru_cache(maxsize=262144)
def similar_words(a: str, b: str) -> bool:
    """Same word up to a typo: the documented fuzzy threshold (module docstring)."""
    if a == b:
        return True
    if (min(len(a), len(b)) < 6 or a[:3] != b[:3] or not (a + b).isalpha()
            or frozenset({a, b}) in CONFUSABLE):
        return False
    for p, q in _OPPOSED_PREFIXES:
        if (a.startswith(p) and b.startswith(q)) or (a.startswith(q) and b.startswith(p)):
            return False
    if abs(len(a) - len(b)) <= 1 and _edits(a, b) <= 1:
        return True
    # two edits only inside long words: a changed ending (metastatic/metastasis) is no typo
    return min(len(a), len(b)) >= 10 and a[-3:] == b[-3:] and _edits(a, b) <= 2


def _align(a: frozenset[str], b: frozenset[str]) -> tuple[frozenset[str], list[str]]:
    """a's words renamed to b's where they are typos of them; notes of each renaming."""
    out, notes = set(), []
    for w in a:
        if w in b:
            out.add(w)
            continue
        twin = next((v for v in sorted(b - a) if similar_words(w, v)), None)
        out.add(twin or w)
        if twin:
            notes.append(f"'{w}'~'{twin}'")
    return frozenset(out), notes


def _fmt(words: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(words)) + "}"


def _compare(p: Alias, t: Alias) -> Verdict:
    if not p.distinctive or not t.distinctive:
        side = "prediction" if not p.distinctive else "truth"
        text = (p if side == "prediction" else t).text
        return Verdict(False, f"the {side} has only generic words ('{text}')")
    for x, y in OPPOSED:
        if (x in p.qualifiers and y in t.qualifiers) or (y in p.qualifiers and x in t.qualifiers):
            return Verdict(False, f"opposed qualifiers: {x} vs {y}")
    if p.numbers and t.numbers and p.numbers != t.numbers:
        return Verdict(False, f"numbers differ: {_fmt(p.numbers)} vs {_fmt(t.numbers)}")
    pd, notes = _align(p.distinctive, t.distinctive)
    ph, _ = _align(p.head, t.distinctive)
    typo = f" (typos: {', '.join(notes)})" if notes else ""
    only_p, only_t = pd - t.distinctive, t.distinctive - pd
    if not only_p and not only_t:
        return Verdict(True, f"same distinctive words {_fmt(pd)}{typo}")
    if only_p and only_t:
        return Verdict(False, f"different diagnoses: prediction has {_fmt(only_p)}, "
                              f"truth has {_fmt(only_t)}")
    small, big_head, extra, who = (pd, t.head, only_t, "truth") if only_t else \
        (t.distinctive, ph, only_p, "prediction")
    small_q, big_q = (p.qualifiers, t.qualifiers) if only_t else (t.qualifiers, p.qualifiers)
    if small_q - big_q:  # "primary lateral sclerosis" is not a kind of "ALS"
        return Verdict(False, f"'{', '.join(sorted(small_q - big_q))}' is part of the less "
                              f"specific name but absent from the {who}")
    if small <= CLASS_NOUNS:
        return Verdict(False, f"{_fmt(small)} names only a broad class; the {who} is more "
                              f"specific ({_fmt(extra)})")
    if not small & big_head:
        return Verdict(False, f"{_fmt(small)} is not the main diagnosis of the {who} "
                              f"(its head is {_fmt(big_head)})")
    return Verdict(True, f"differs in specificity: the {who} adds {_fmt(extra)}{typo}")


def offline_verdict(prediction: str, truth: str) -> Verdict:
    """Does the predicted diagnosis name the true one? Rules in the module docstring.

    Symmetric except for the wording of the reason.
    """
    p_text, p_aliases = analyse(prediction)
    t_text, t_aliases = analyse(truth)
    if not p_text:
        return Verdict(False, "empty prediction")
    if not any(a.distinctive for a in t_aliases):  # "Final Diagnosis not found."
        return Verdict(False, f"the truth names no diagnosis ('{t_text}')")
    if p_text == t_text:
        return Verdict(True, f"equal after normalisation: '{p_text}'")
    first: Verdict | None = None
    for pa in p_aliases:
        for ta in t_aliases:
            v = _compare(pa, ta)
            if v.match:
                return v
            first = first or v
    return first or Verdict(False, "nothing to compare")


class LabelSpace:
    """The ground-truth labels, indexed by word, to name the label a prediction refers to.

    Used for coverage and entropy: a prediction maps to the label the offline matcher
    matches; among several, the closest (fewest unshared distinctive words), then the first
    in sorted order, so the mapping is deterministic.
    """

    def __init__(self, labels: Iterable[str]) -> None:
        self.labels = sorted(set(labels))
        self._index: dict[str, set[str]] = {}
        for label in self.labels:
            keys = {f"n:{normalize(label)}"}
            for w in distinctive_words(label):
                keys |= {f"w:{w}", f"p:{w[:3]}"}
            for k in keys:
                self._index.setdefault(k, set()).add(label)

    def lookup(self, prediction: str) -> str | None:
        keys = {f"n:{normalize(prediction)}"}
        for w in distinctive_words(prediction):
            keys |= {f"w:{w}", f"p:{w[:3]}"}
        candidates = sorted(set().union(*(self._index.get(k, set()) for k in keys)))
        hits = [c for c in candidates if offline_verdict(prediction, c).match]
        return min(hits, key=lambda c: (closeness(prediction, c), c)) if hits else None

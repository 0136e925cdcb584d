"""Task 2 text metrics: keyword precision/recall/F1, corpus BLEU-4 and METEOR. Pure, no I/O.

Keyword extraction (`keywords`), case-insensitive exact match as in the paper:
1. Tokenise with `language.words`: lowercase, every maximal run of letters/digits is a token
   (regex ``[^\\W_]+``), so "T2-weighted" -> "t2", "weighted" and "T1WI" -> "t1wi".
2. Scan the tokens left to right; where a term of MULTIWORD_TERMS starts, the longest such
   term is taken as ONE keyword ("white matter", "mass effect", "corpus callosum") and its
   words are not counted again on their own (so "mass effect" never matches "mass").
3. Other tokens: a token of MODALITY_TERMS (flair axial sagittal t1 t2 coronal dwi t1w t2w
   weighted, the paper's list) is a modality keyword; a token that is a stop word (STOP_WORDS:
   English function words + REPORTING_WORDS such as "image", "shows", "arrow", "mm"), a single
   character (panel letters "(A)") or digits only (figure numbers, sizes) is dropped; every
   other token is a clinical keyword.
Keywords form a SET per caption (repeating a word earns nothing). Negation is not read: "no
enhancement" yields the keyword "enhancement" like "enhancement" does; the binary status
metric (status.py) is where negation counts.

Scores, computed apart for clinical and modality keywords, G_i / P_i = keyword sets of the
ground-truth / predicted caption of case i, over the cases that have a ground-truth caption:
- corpus-level (the interface's clinical_f1 / modality_f1): micro over cases,
  P = sum|P_i & G_i| / sum|P_i|, R = sum|P_i & G_i| / sum|G_i|, F1 = 2PR/(P+R); 0 when a
  denominator is 0. Chosen over "one keyword set for the whole corpus" because that set
  forgets which image a word was said about: naming every sequence for every image would
  reach full recall.
- per-case mean (`*_case_mean`): F1_i per case, averaged over the cases where G_i or P_i is
  non-empty (a case where both are empty has nothing to score and is left out; an empty
  P_i against a non-empty G_i scores 0, as does a non-empty P_i against an empty G_i).

BLEU: nltk corpus_bleu, BLEU-4 (weights 1/4 each), no smoothing, one reference per case, on
the `words` tokens; 0 when some n-gram order has no overlap at all (nltk then warns; we
silence that warning because the 0 is the defined value). METEOR: nltk meteor_score
(alpha 0.9, beta 3, gamma 0.5; exact, Porter-stem and WordNet-synonym matching) per case on
the same tokens, averaged over cases. The WordNet reader is passed in (nova_mlflow.wordnet
supplies it: WordNet 3.0 shipped with the package) so this module never touches the disk.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nova_mlflow.metrics.language import words

MODALITY_TERMS = frozenset({"flair", "axial", "sagittal", "t1", "t2", "coronal", "dwi", "t1w",
                            "t2w", "weighted"})

#: Anatomy and findings whose words mean something else apart ("mass" vs "mass effect").
#: Exact token sequences; spelling variants are listed as separate terms.
MULTIWORD_TERMS: tuple[str, ...] = (
    "white matter", "gray matter", "grey matter", "corpus callosum", "basal ganglia",
    "mass effect", "midline shift", "contrast enhancement", "ring enhancement",
    "diffusion restriction", "restricted diffusion", "apparent diffusion coefficient",
    "vasogenic edema", "vasogenic oedema", "perilesional edema", "perilesional oedema",
    "lateral ventricle", "lateral ventricles", "third ventricle", "fourth ventricle",
    "centrum semiovale", "internal capsule", "external capsule", "posterior fossa",
    "cerebellopontine angle", "cerebellar peduncle", "cerebellar peduncles",
    "cerebral peduncle", "cerebral peduncles", "cerebellar hemisphere",
    "cerebellar hemispheres", "cerebral hemisphere", "cerebral hemispheres",
    "globus pallidus", "choroid plexus", "septum pellucidum", "pineal gland",
    "pituitary gland", "optic nerve", "optic nerves", "optic chiasm", "cavernous sinus",
    # "sagittal" here is anatomy, not the imaging plane: the term keeps it out of modality.
    "superior sagittal sinus", "sagittal sinus", "transverse sinus", "sigmoid sinus",
    "subarachnoid space", "subarachnoid hemorrhage", "subarachnoid haemorrhage",
    "subdural hematoma", "subdural haematoma", "blood products", "fluid level",
    "dural tail", "cerebrospinal fluid", "spinal cord", "foramen magnum", "sella turcica",
    "mammillary bodies",
)

#: English function words (a fixed list: nltk's stopwords corpus is not installed).
ENGLISH_STOP_WORDS = frozenset("""
a about above across after afterwards again against all almost alone along already also
although always am among amongst an and another any anyhow anyone anything anyway anywhere
are around as at be became because become becomes becoming been before beforehand behind
being below beside besides between beyond both but by can cannot could did do does doing done
down due during each either else elsewhere enough etc even ever every everything except few
for former formerly from further had has have having he her here hers herself him himself his
how however i if in into is it its itself just last latter least less many may me meanwhile
might more moreover most mostly much must my myself neither never nevertheless next no nobody
none nor not nothing now nowhere of off often on once one only onto or other others otherwise
our ours ourselves out over own per perhaps please quite rather same several she should since
so some somehow something sometimes somewhere still such than that the their theirs them
themselves then thence there thereafter thereby therefore therein thereupon these they this
those though through throughout thus to together too toward towards under until up upon us
very via was we well were what whatever when whence whenever where whereas whereby wherein
whether which while whither who whoever whole whom whose why will with within without would
yet you your yours yourself yourselves
""".split())  # noqa: SIM905 (a word list reads best as text)

#: Words about the act of reporting or the figure, not about the brain.
REPORTING_WORDS = frozenset("""
image images imaging mri mr scan scans sequence sequences view views slice slices section
sections show shows showed shown showing demonstrate demonstrates demonstrated demonstrating
reveal reveals revealed revealing depict depicts depicted depicting display displays
displayed displaying see seen noted note observed visible identified evident appear appears
fig figure figures arrow arrows arrowhead arrowheads mm cm
""".split())  # noqa: SIM905 (a word list reads best as text)

STOP_WORDS = ENGLISH_STOP_WORDS | REPORTING_WORDS

_TERMS: dict[str, list[tuple[str, ...]]] = {}
for _t in sorted(MULTIWORD_TERMS, key=lambda s: -len(s.split())):  # longest first
    _TERMS.setdefault(_t.split()[0], []).append(tuple(_t.split()))


@dataclass(frozen=True)
class Keywords:
    clinical: frozenset[str]
    modality: frozenset[str]


def keywords(text: str | None) -> Keywords:
    """Clinical and modality keyword sets of one caption (rules in the module docstring)."""
    toks = words(text)
    clinical: set[str] = set()
    modality: set[str] = set()
    i = 0
    while i < len(toks):
        term = next((t for t in _TERMS.get(toks[i], ()) if tuple(toks[i:i + len(t)]) == t), None)
        if term is not None:
            clinical.add(" ".join(term))
            i += len(term)
            continue
        tok = toks[i]
        if tok in MODALITY_TERMS:
            modality.add(tok)
        elif tok not in STOP_WORDS and len(tok) > 1 and not tok.isdigit():
            clinical.add(tok)
        i += 1
    return Keywords(frozenset(clinical), frozenset(modality))


@dataclass(frozen=True)
class Match:
    """One case's keyword comparison: what was hit, missed (in GT only), extra (in pred only)."""

    hits: frozenset[str]
    missed: frozenset[str]
    extra: frozenset[str]

    @property
    def n_pred(self) -> int:
        return len(self.hits) + len(self.extra)

    @property
    def n_gold(self) -> int:
        return len(self.hits) + len(self.missed)

    @property
    def f1(self) -> float | None:
        """None when both sets are empty (nothing to score)."""
        if self.n_pred == 0 and self.n_gold == 0:
            return None
        return 2 * len(self.hits) / (self.n_pred + self.n_gold)


def match(pred: frozenset[str], gold: frozenset[str]) -> Match:
    return Match(pred & gold, gold - pred, pred - gold)


def corpus_prf(matches: Sequence[Match]) -> dict[str, float]:
    """Micro precision/recall/F1 over cases (the corpus-level definition above)."""
    return prf(sum(len(m.hits) for m in matches), sum(m.n_pred for m in matches),
               sum(m.n_gold for m in matches))


def prf(hits: float, n_pred: float, n_gold: float) -> dict[str, float]:
    """Precision/recall/F1 from summed keyword counts (0.0 where nothing is counted)."""
    p = hits / n_pred if n_pred else 0.0
    r = hits / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def case_mean_f1(matches: Sequence[Match]) -> float:
    """Mean per-case F1 over the cases with something to score; 0.0 when there are none."""
    scores = [f for f in (m.f1 for m in matches) if f is not None]
    return sum(scores) / len(scores) if scores else 0.0


def corpus_bleu4(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """nltk corpus BLEU-4, one reference per hypothesis, no smoothing; 0.0 on empty input."""
    from nltk.translate.bleu_score import corpus_bleu

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    if not hypotheses or not any(hypotheses):
        return 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*\b0 counts of\b", category=UserWarning)
        return float(corpus_bleu([[list(r)] for r in references], [list(h) for h in hypotheses]))


def bleu4_from_counts(matches: Any, totals: Any, hyp_len: Any, ref_len: Any) -> Any:
    """corpus_bleu4 from summed per-case counts (metrics/components.bleu_counts of orders
    1-4, answer and reference lengths), as nltk computes it: 0.0 without a unigram match, a
    zero higher order counts as float_info.min, brevity penalty from the summed lengths.

    Arrays broadcast (`matches`, `totals`: [..., 4]; lengths: [...]): the case-clustered
    statistics evaluate every resample at once. Plain numbers in, a float out."""
    m, t = np.asarray(matches, dtype=float), np.asarray(totals, dtype=float)
    hyp, ref = np.asarray(hyp_len, dtype=float), np.asarray(ref_len, dtype=float)
    p = np.where(m > 0, m / np.where(t > 0, t, 1.0), sys.float_info.min)
    bp = np.where(hyp > ref, 1.0, np.exp(1 - ref / np.where(hyp > 0, hyp, 1.0)))
    bp = np.where(hyp == 0, 0.0, bp)
    out = np.where(m[..., 0] == 0, 0.0, bp * np.exp(np.sum(0.25 * np.log(p), axis=-1)))
    return float(out) if out.ndim == 0 else out


def meteor_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]],
                  wordnet: Any) -> list[float]:
    """nltk METEOR per case (one reference each) with the given WordNet reader.

    `wordnet` is required, not defaulted: nltk's default would look for WordNet on disk,
    and a METEOR without synonyms is a different number.
    """
    from functools import lru_cache
    from types import SimpleNamespace

    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score

    if wordnet is None:
        raise ValueError("meteor_scores needs a WordNet reader (see nova_mlflow.wordnet)")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    # nltk's own stemmer and WordNet lookup, each word's answer kept for the rest of the call:
    # captions share most words, and stemming and synsets are half of METEOR's time each
    # (both pure functions of the word, so every value is the one nltk computes)
    stemmer = SimpleNamespace(stem=lru_cache(maxsize=None)(PorterStemmer().stem))
    lookup = SimpleNamespace(synsets=lru_cache(maxsize=None)(wordnet.synsets))
    return [float(meteor_score([list(r)], list(h), stemmer=stemmer, wordnet=lookup))
            if h and r else 0.0 for r, h in zip(references, hypotheses)]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0

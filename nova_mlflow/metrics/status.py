"""Binary normal/abnormal status read from a caption, and its accuracy / F1. Pure.

Why read it from text: NOVA has no normal/abnormal flag (every case has a lesion), and the
model answers in free text, so the status of BOTH the prediction and the ground truth is
read from their captions with the same rule; the ground-truth side therefore depends on
this rule too (on NOVA nearly every expert caption reads "abnormal").

Rule (`read_status`), on the lowercased text cut into clauses at . ; : ! ? and newlines:
- A *normal statement* is a global all-clear: "no abnormality" with at most three
  qualifiers between ("no significant intracranial abnormality", "no evidence of pathology";
  never another noun, so "no enhancement of the lesion" is not "no lesion"), "no focal
  lesion", "no ... findings", "unremarkable", "normal study/scan/MRI/brain/examination/
  findings", "within normal limits", "nothing abnormal", "the brain/study/scan/... is (or
  appears) normal" (not "the ventricles are normal": that is one structure, not the study).
- It is *qualified* when a remainder word (other, further, additional, new, otherwise, rest,
  remainder, remaining, elsewhere, else, apart, except, besides, aside, beyond) comes before
  it or inside it in its clause: "no other abnormality", "no new lesion", "otherwise
  unremarkable", "the rest of the brain is unremarkable". A qualified statement implies a
  finding: abnormal.
- A *finding* is a lesion word (FINDING) not negated in its clause: negated when a cue (no,
  not, without, absence of, absent, negative for, free of, nor, neither) stands within six
  words before it, or the clause goes on with "not seen / not identified / absent / ...".
Decision: abnormal if there is a finding or a qualified statement; else normal if there is
a normal statement; else abnormal ("abnormal unless the text says there is no abnormality").
An empty text has no status (None): unanswered cases are scored as wrong by the caller.

Scores: accuracy and F1 with positive class = abnormal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from nova_mlflow.metrics.language import words

Status = Literal["normal", "abnormal"]

_CLAUSE = re.compile(r"[.;:!?\n]+")
_REMAINDER = re.compile(r"\b(other|further|additional|new|otherwise|rest|remainder|remaining|"
                        r"elsewhere|else|apart|except|besides|aside|beyond)\b")
# Words allowed between "no" and the head noun: qualifiers, never another noun, so that
# "no enhancement of the lesion" is not read as "no lesion".
_QUALIFIER = (r"(?:significant|focal|acute|obvious|definite|evident|apparent|visible|"
              r"detectable|intracranial|abnormal|pathological|suspicious|structural|"
              r"parenchymal|discrete|gross|major|other|further|additional|new|evidence\s+of|"
              r"signs?\s+of|suggestion\s+of)")
_NORMAL = re.compile(
    rf"\bno\s+(?:{_QUALIFIER}\s+){{0,3}}(?:abnormalit(?:y|ies)|lesions?|patholog(?:y|ies)|"
    r"findings?|anomal(?:y|ies)|disease)\b"
    r"|\bunremarkable\b"
    r"|\bnormal\s+(?:brain\s+)?(?:study|scan|mri|mr|examination|exam|brain|findings?|"
    r"appearing\s+brain)\b"
    r"|\bwithin\s+normal\s+limits\b"
    r"|\bnothing\s+abnormal\b"
    r"|\b(?:brain|study|scan|mri|examination|exam|findings?|image|images)\s+(?:is|are|appears?|"
    r"looks?)\s+(?:\w+\s+)?normal\b"
)
_FINDING = re.compile(
    r"\b(?:lesions?|mass(?:es)?|tumou?rs?|neoplasms?|hyperintens\w*|hypointens\w*|"
    r"enhanc\w*|o?edema|haemorrhag\w*|hemorrhag\w*|bleed\w*|hematoma|haematoma|infarct\w*|"
    r"isch(?:a)?emi\w*|cysts?|cystic|nodul\w*|nodules?|abscess\w*|atroph\w*|hydrocephalus|"
    r"calcifi\w*|thromb\w*|aneurysms?|malformations?|metasta\w*|glioma\w*|herniat\w*|"
    r"effacement|restrict\w*|abnormal(?:ity|ities)?|anomal(?:y|ies)|collections?|"
    r"dilat\w*|enlarge\w*|thicken\w*|shift|occlu\w*|stenos\w*|dissection|necros\w*|"
    r"demyelinat\w*|gliosis|encephalomalacia|fistula\w*|post-?surgical|post-?operative|"
    r"resect\w*)\b")
_NEG_CUE = re.compile(r"\b(?:no|not|without|absence\s+of|absent|negative\s+for|free\s+of|nor|"
                      r"neither)\b")
_POST_NEG = re.compile(r"^\W*(?:\w+\W+){0,3}?(?:is|are|was|were)?\s*(?:not|no\s+longer)\s+"
                       r"(?:seen|identified|present|visible|demonstrated|detected|evident|noted)"
                       r"|^\W*(?:\w+\W+){0,2}?(?:is|are|was|were)\s+(?:absent|excluded)")


def _negated(clause: str, start: int, end: int) -> bool:
    before = clause[:start].split()[-6:]
    if _NEG_CUE.search(" ".join(before)):
        return True
    return bool(_POST_NEG.search(clause[end:]))


def read_status(text: str | None) -> Status | None:
    """'normal' or 'abnormal' as the text states it; None for an empty text."""
    if text is None or not text.strip():
        return None
    normal = False
    for clause in _CLAUSE.split(text.lower()):
        for m in _NORMAL.finditer(clause):
            if _REMAINDER.search(clause[:m.end()]):
                return "abnormal"
            normal = True
        for m in _FINDING.finditer(clause):
            covered = any(n.start() <= m.start() < n.end() for n in _NORMAL.finditer(clause))
            if not covered and not _negated(clause, m.start(), m.end()):
                return "abnormal"
    return "normal" if normal else "abnormal"


def binary_scores(truth: Sequence[Status], pred: Sequence[Status | None]) -> dict[str, float]:
    """Accuracy and F1 (positive = abnormal); a None prediction is wrong whatever the truth."""
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truths for {len(pred)} predictions")
    if not truth:
        return {"accuracy": 0.0, "f1": 0.0}
    tp = sum(t == "abnormal" and p == "abnormal" for t, p in zip(truth, pred))
    fp = sum(t == "normal" and p == "abnormal" for t, p in zip(truth, pred))
    fn = sum(t == "abnormal" and p != "abnormal" for t, p in zip(truth, pred))
    correct = sum(t == p for t, p in zip(truth, pred))
    return {"accuracy": correct / len(truth),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}


# --- a candidate for the paper's own "Binary F1" ------------------------------------------
# The paper's Table 2 Binary F1 (Gemini 2.0 Flash 5.3, GPT-4o 11.3, Qwen2.5-VL-72B 2.4) states
# no positive class, averaging or reading of the status, and no public NOVA code defines it.
# With NOVA's truths all abnormal, F1 with positive = abnormal (binary_scores above) is
# 2r / (1 + r) for r = share of answers read abnormal: the paper's figures would need r of
# 1-6 %, which the same models' clinical keyword F1 (14-20 %) contradicts; positive = normal
# gives 0 for every model. The closest candidate in method and size is Table 2's own keyword
# machinery applied to the words "normal" and "abnormal" (25 NOVA captions use them): logged
# as `captioning/binary_keyword_f1`, unconfirmed. README "How things are scored" has the table
# of candidates that were tried.

BINARY_WORDS = frozenset({"normal", "abnormal"})


def binary_words(text: str | None) -> frozenset[str]:
    """The binary keywords ("normal", "abnormal") a text contains, as exact lowercased words."""
    return frozenset(words(text)) & BINARY_WORDS


def keyword_binary_prf(gts: Sequence[str | None], preds: Sequence[str | None]) -> dict[str, float]:
    """Corpus-pooled precision / recall / F1 of the words "normal" / "abnormal" per case
    (lowercased exact words, so "abnormality" is not "abnormal"), as the keyword columns."""
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} references for {len(preds)} answers")
    tp = n_pred = n_gold = 0
    for g, p in zip(gts, preds):
        gw, pw = binary_words(g), binary_words(p)
        tp += len(gw & pw)
        n_pred += len(pw)
        n_gold += len(gw)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}

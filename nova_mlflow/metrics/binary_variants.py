"""Candidate definitions of the paper's "Binary F1" (Table 2), side by side. Pure.

Why: the paper's binary F1 (Gemini 2.0 Flash 5.3, GPT-4o 11.3, Qwen2.5-VL-72B 2.4) does not
say its positive class, its averaging or how a status is read from text, and no public NOVA
code we could find defines it (notes/fidelity.md). Our own figure (metrics/status.py,
positive = abnormal) is therefore not comparable; these functions give every candidate so a
run can show which one it reports and how far the others are.

`binary_f1_variants(truth, pred)` over per-case statuses ("normal" / "abnormal"; a None
prediction = no status, wrong for either truth):
- f1_abnormal: positive = abnormal (ours); f1_normal: positive = normal;
- f1_macro: mean of the two; f1_weighted: weighted by the number of truths of each class;
- f1_micro: pooled TP / FP / FN over both classes (equals accuracy when every prediction has
  a status); accuracy: share of cases whose status is right.
A class with no truth and no prediction has F1 0.0 (nothing to find, nothing found).

`keyword_binary_prf(gts, preds)`: the Table 2 keyword machinery applied to the two words
"normal" and "abnormal": per case the set of those words in the text (lowercased words, exact
match, so "abnormality" is not "abnormal"), pooled over the corpus: P = sum |P&G| / sum |P|,
R = sum |P&G| / sum |G|, F1 = 2PR / (P + R).
"""

from __future__ import annotations

from collections.abc import Sequence

from nova_mlflow.metrics.language import words
from nova_mlflow.metrics.status import Status

_CLASSES: tuple[Status, Status] = ("abnormal", "normal")
BINARY_WORDS = frozenset({"normal", "abnormal"})


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def binary_f1_variants(truth: Sequence[Status], pred: Sequence[Status | None]) -> dict[str, float]:
    """Every candidate binary F1 (fractions) plus accuracy, over aligned per-case statuses."""
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} truths for {len(pred)} predictions")
    n = len(truth)
    per_class: dict[str, float] = {}
    tp_all = fp_all = fn_all = 0
    for cls in _CLASSES:
        tp = sum(t == cls and p == cls for t, p in zip(truth, pred))
        fp = sum(t != cls and p == cls for t, p in zip(truth, pred))
        fn = sum(t == cls and p != cls for t, p in zip(truth, pred))
        per_class[cls] = _f1(tp, fp, fn)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    support = {cls: sum(t == cls for t in truth) for cls in _CLASSES}
    return {
        "f1_abnormal": per_class["abnormal"],
        "f1_normal": per_class["normal"],
        "f1_macro": (per_class["abnormal"] + per_class["normal"]) / 2,
        "f1_weighted": (sum(per_class[c] * support[c] for c in _CLASSES) / n) if n else 0.0,
        "f1_micro": _f1(tp_all, fp_all, fn_all),
        "accuracy": (sum(t == p for t, p in zip(truth, pred)) / n) if n else 0.0,
    }


def binary_words(text: str | None) -> frozenset[str]:
    """The binary keywords ("normal", "abnormal") a text contains, as exact lowercased words."""
    return frozenset(words(text)) & BINARY_WORDS


def keyword_binary_prf(gts: Sequence[str | None], preds: Sequence[str | None]) -> dict[str, float]:
    """Corpus-pooled precision / recall / F1 of the binary keywords (see the module doc)."""
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

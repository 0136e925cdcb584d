"""Task 2 (image description): answers -> per-case rows -> Table 2's metrics.

Metric definitions live with the pure functions: keywords, BLEU and METEOR in
metrics/captioning.py, the normal/abnormal status in metrics/status.py, language statistics
in metrics/language.py. Here: which cases count and the per-case rows (`case_row`, the one
place they are built). report/captioning.py makes Table 2, the splits and Figure 5.

Which cases count:
- Text metrics (keyword P/R/F1, BLEU, METEOR, binary status) are computed over the cases that
  have a ground-truth caption; the others (6 in NOVA) are left out and counted in
  `no_reference`.
- A case without a usable answer (missing, api_error, refused, parse_failure, i.e. an empty
  answer) scores as an empty caption: no keywords, 0 METEOR, no status (a wrong status).
- Language statistics: `gt_*` over the ground-truth captions of the scored cases, the
  model's over its non-empty answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib.metadata import version
from typing import Any

import pandas as pd

from nova_mlflow.memo import ScoreMemo, memo_key
from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics.components import bleu_components
from nova_mlflow.metrics.language import language_stats, words
from nova_mlflow.metrics.status import (
    binary_scores,
    binary_words,
    keyword_binary_prf,
    read_status,
)
from nova_mlflow.schemas import METRICS_VERSION, Answer, Case, Task
from nova_mlflow.scoring.common import (
    AnswerKey,
    ScoreContext,
    TaskScore,
    counts,
    error_of,
    parse_all,
)

def _kw(keywords: frozenset[str]) -> str:
    return "; ".join(sorted(keywords))


def text_metrics(gts: Sequence[str], preds: Sequence[str], meteors: Sequence[float],
                 bleu: float | None = None) -> dict[str, float]:
    """Keyword, BLEU, METEOR and status scores over aligned (reference, answer) pairs.

    `meteors` are the per-case METEOR values (computed once with WordNet, reused for groups);
    `bleu` the corpus BLEU of these pairs if already known (computed with nltk when None).
    """
    kg = [cap.keywords(t) for t in gts]
    kp = [cap.keywords(t) for t in preds]
    out: dict[str, float] = {}
    for kind in ("clinical", "modality"):
        ms = [cap.match(getattr(p, kind), getattr(g, kind)) for p, g in zip(kp, kg)]
        out.update({f"{kind}_{k}": v for k, v in cap.corpus_prf(ms).items()})
        out[f"{kind}_f1_case_mean"] = cap.case_mean_f1(ms)
    out["bleu"] = cap.corpus_bleu4([words(t) for t in gts], [words(t) for t in preds]) \
        if bleu is None else bleu
    out["meteor"] = cap.mean(meteors)
    truth = [read_status(t) or "abnormal" for t in gts]  # gts are non-empty: never None
    b = binary_scores(truth, [read_status(t) for t in preds])
    out["binary_accuracy"], out["binary_f1"] = b["accuracy"], b["f1"]
    out["binary_keyword_f1"] = keyword_binary_prf(gts, preds)["f1"]
    return out


@lru_cache(maxsize=1)
def nltk_version() -> str:
    """The installed nltk's version, read from its metadata (importing nltk takes ~1 s)."""
    return version("nltk")


def _scorer(name: str) -> str:
    """What a memoised value depends on besides its words: the package's metric definitions
    (METRICS_VERSION, bumped when how a metric is computed changes) and nltk's version."""
    return f"{name} metrics-v{METRICS_VERSION} nltk-{nltk_version()}"


def meteor_values(refs: Sequence[list[str]], hyps: Sequence[list[str]],
                  memo: ScoreMemo | None) -> list[float]:
    """nltk METEOR per (reference, answer) pair; with a memo, the pairs it knows are read
    back and only the others computed (and stored). WordNet is loaded only for those."""
    from nova_mlflow.wordnet import fingerprint, wordnet

    def compute(idx: list[int]) -> list[float]:
        return cap.meteor_scores([refs[i] for i in idx], [hyps[i] for i in idx], wordnet())

    if memo is None:
        return compute(list(range(len(refs))))
    scorer = f"{_scorer('meteor')} wordnet-{fingerprint()}"
    return memo.through([memo_key(scorer, r, h) for r, h in zip(refs, hyps)], compute,
                        "METEOR pairs")


def corpus_bleu(refs: Sequence[list[str]], hyps: Sequence[list[str]],
                memo: ScoreMemo | None) -> float:
    """nltk's corpus BLEU-4 of these pairs, from the memo when the same pairs were scored
    with the same nltk before."""
    if memo is None:
        return cap.corpus_bleu4(refs, hyps)
    key = memo_key(_scorer("corpus-bleu4"), list(refs), list(hyps))
    return memo.through([key], lambda _: [cap.corpus_bleu4(refs, hyps)], "corpus BLEU")[0]


def case_row(caption: str | None, pred: str, meteor: float | None) -> dict[str, Any]:
    """A case's text-metric columns: whether it has a reference (`has_reference`; text
    metrics count only those), the answer's words, and with a reference: keyword hits,
    misses, extras, counts and F1 per kind, BLEU's n-gram counts, METEOR and the
    normal/abnormal status of each side. Counts are the components the case-clustered
    statistics resample (metrics/components.py); nothing is rounded."""
    ref, hyp = words(caption), words(pred)
    row: dict[str, Any] = {"has_reference": int(bool(ref)), "n_words": len(hyp)}
    if not ref:
        return row
    kg, kp = cap.keywords(caption), cap.keywords(pred)
    for kind in ("clinical", "modality"):
        m = cap.match(getattr(kp, kind), getattr(kg, kind))
        row |= {f"{kind}_hits": _kw(m.hits), f"{kind}_missed": _kw(m.missed),
                f"{kind}_extra": _kw(m.extra), f"{kind}_f1": m.f1,
                f"{kind}_n_hits": len(m.hits), f"{kind}_n_pred": m.n_pred,
                f"{kind}_n_gold": m.n_gold}
    gw, pw = binary_words(caption), binary_words(pred)
    row |= {"binary_keyword_n_hits": len(gw & pw), "binary_keyword_n_pred": len(pw),
            "binary_keyword_n_gold": len(gw)}
    gt_binary, pred_binary = read_status(caption), read_status(pred)
    return row | {"gt_n_words": len(ref), **bleu_components(ref, hyp),
                  "meteor": float(meteor or 0.0), "gt_binary": gt_binary,
                  "pred_binary": pred_binary or "", "binary_correct": gt_binary == pred_binary}


def score(cases: list[Case], answers: Mapping[AnswerKey, Answer], ctx: ScoreContext) -> TaskScore:
    parsed = parse_all(cases, answers, Task.captioning, ctx.frame)
    preds = [p.prediction.text if p is not None and p.ok else "" for _, p, _ in parsed]  # type: ignore[union-attr]
    has_ref = [bool(words(c.caption)) for c in cases]
    ref_idx = [i for i, h in enumerate(has_ref) if h]
    gts = [cases[i].caption or "" for i in ref_idx]
    ref_preds = [preds[i] for i in ref_idx]
    ref_words, pred_words = [words(t) for t in gts], [words(t) for t in ref_preds]
    meteor = meteor_values(ref_words, pred_words, ctx.memo)
    meteor_of = dict(zip(ref_idx, meteor))

    rows = []
    for i, (c, (a, p, status)) in enumerate(zip(cases, parsed)):
        rows.append({"filename": c.filename, "case_id": c.case_id,
                     "plane": c.derived.plane or "", "sequence": c.derived.sequence or "",
                     "status": status, "model": (a.model or "") if a else "",
                     "caption_gt": c.caption or "", "caption_pred": preds[i],
                     **case_row(c.caption, preds[i], meteor_of.get(i)),
                     "error": error_of(a, p)})
    table = _nulls_as_none(pd.DataFrame(rows))

    metrics = text_metrics(gts, ref_preds, meteor, corpus_bleu(ref_words, pred_words, ctx.memo))
    metrics |= language_stats(preds).as_metrics()
    metrics |= language_stats(c.caption for c in cases).as_metrics("gt_")  # all: the paper's 729
    metrics["no_reference"] = float(len(cases) - len(ref_idx))
    metrics |= counts([s for _, _, s in parsed])
    return TaskScore(Task.captioning, metrics, table, context=ctx)


def _nulls_as_none(df: pd.DataFrame) -> pd.DataFrame:
    """Cells with no value (no reference) as None, so the logged JSON table holds null, not NaN."""
    for col in df.columns:
        if df[col].isna().any():
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df

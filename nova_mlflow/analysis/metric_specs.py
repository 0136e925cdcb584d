"""Every Table 1-3 metric as a function of case weights over the per-case tables' columns.

Why: one definition serves the point estimate (unit weights: the package's scalar functions,
metrics/*.py, to float rounding) and all B resamples at once (weights [B, G] -> values [B]).
A case with weight w counts w times; the mask column `has_reference` removes a case from a
metric while it is still drawn with its cluster.

Columns read (written by scoring/<task>.case_row; components in metrics/components.py):
- localization: n_gold, n_pred, ap30, ap50, ap50_95, detected30, false_positives30,
  detected50, matched30, matched50, coco_tp (JSON), best_iou_excl (definition (c));
- captioning: has_reference, {clinical,modality,binary_keyword}_n_hits/_n_pred/_n_gold
  (keywords in both / the answer / the reference), bleu_matches and
  bleu_totals (JSON lists, n = 1..4), n_words, gt_n_words, meteor, gt_binary / pred_binary
  ("normal" | "abnormal" | ""), binary_correct;
- diagnosis: has_reference, top1, top5, predicted_label ("" when none), truth_label.
Every table also has `filename` and `case_id` (the resampling unit).

Kinds: a *mean* over cases (value = sum w m y / sum w m; its SE is CR1 from the
per-case values), else a *corpus* statistic (ratios of sums, F1 of sums, BLEU, COCO AP,
distinct-label coverage, entropy; SE from the bootstrap). `direction` says which way is
better (+1 higher, -1 lower, 0 no preferred direction: not gateable).
`SKIPPED` lists the logged metrics that are not resampled, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from nova_mlflow.analysis import coco_resample
from nova_mlflow.analysis.stats import Weights, ratio
from nova_mlflow.metrics.captioning import bleu4_from_counts
from nova_mlflow.metrics.coco import THRESHOLDS as COCO_THRESHOLDS

MASK = "has_reference"  # 1: the case counts in the task's masked metrics
LABEL_COLUMNS = ("truth_label", "predicted_label")
#: Columns holding text (labels, statuses) or JSON; the others are numbers.
TEXT_COLUMNS = frozenset({"coco_tp", "bleu_matches", "bleu_totals", "gt_binary", "pred_binary",
                          *LABEL_COLUMNS})


@dataclass
class TaskTable:
    """One run's per-case table of one task, rows aligned to the compared cases."""

    frame: pd.DataFrame  # rows in filename order
    codes: np.ndarray  # cluster index of each row
    n_clusters: int
    _cache: dict = field(default_factory=dict, repr=False)

    def has(self, col: str) -> bool:
        return col in self.frame.columns

    def num(self, col: str) -> np.ndarray:
        """A numeric column as float (null -> NaN)."""
        return self.memo(col, lambda: pd.to_numeric(self.frame[col], errors="coerce")
                         .to_numpy(float))  # type: ignore[return-value]

    def clean(self, col: str) -> np.ndarray:
        """A numeric column with null as 0 (nulls only sit on rows a mask leaves out)."""
        return self.memo(f"clean:{col}", lambda: np.nan_to_num(self.num(col)))  # type: ignore[return-value]

    def mask(self) -> np.ndarray:
        return self.clean(MASK) if self.has(MASK) else np.ones(len(self.frame))

    def lists(self, col: str, k: int) -> np.ndarray:
        """A column of JSON lists of k numbers as [n, k] floats (a null cell: zeros)."""
        def make() -> np.ndarray:
            cells = [json.loads(c) if isinstance(c, str) and c else [0] * k
                     for c in self.frame[col]]
            return np.asarray(cells, dtype=float).reshape(len(cells), k)
        return self.memo(f"lists:{col}", make)  # type: ignore[return-value]

    def text(self, col: str) -> np.ndarray:
        """A text column as str (null -> "")."""
        return self.memo(f"text:{col}", lambda: self.frame[col].fillna("").astype(str)
                         .to_numpy())  # type: ignore[return-value]

    def memo(self, key: str, make: Callable[[], object]) -> object:
        """Computed once per table (parsed columns, COCO flags, label matrices)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


Fn = Callable[[TaskTable, Weights], np.ndarray]
MeanParts = Callable[[TaskTable], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class MetricSpec:
    key: str  # "task/metric" as logged
    columns: tuple[str, ...]  # component columns it needs (besides filename, case_id)
    fn: Fn
    mean: MeanParts | None = None  # (y, m) per row when the metric is a mean over cases
    direction: int = 1
    masked: bool = False  # `has_reference` (when present) removes cases
    # Distinct-label statistics: a resample repeats cases, so it holds fewer distinct labels
    # and its values sit below the observed one (entropy by ~0.2 bits on 281 NOVA cases).
    # Their draws are centred on the observed value before intervals and tests (see
    # comparison.py) and clipped to `bounds`.
    centred: bool = False
    bounds: tuple[float | None, float | None] = (None, None)

    @property
    def task(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def kind(self) -> str:
        return "mean" if self.mean is not None else "corpus"


def mean_spec(key: str, col: str, masked: bool = False, transform: Callable | None = None,
              direction: int = 1) -> MetricSpec:
    """Mean over the counted cases of a column (optionally transformed, e.g. IoU >= 0.3)."""
    def parts(t: TaskTable) -> tuple[np.ndarray, np.ndarray]:
        y = t.clean(col)
        return (transform(y) if transform else y), (t.mask() if masked else np.ones(len(y)))

    def plain(t: TaskTable, w: Weights) -> np.ndarray:
        tot = _totals(t, w)
        return ratio(tot[col, masked], tot["1", masked])

    return MetricSpec(key, (col,), _mean_fn(parts) if transform else plain, parts, direction,
                      masked)


def _mean_fn(parts: MeanParts) -> Fn:
    def fn(t: TaskTable, w: Weights) -> np.ndarray:
        y, m = parts(t)
        s = w.sum(np.stack([m * y, m], axis=1))
        return ratio(s[:, 0], s[:, 1])
    return fn


def _totals(t: TaskTable, w: Weights) -> dict[tuple[str, bool], np.ndarray]:
    """Weighted totals of every numeric component column, plain and masked, in one product.

    (column, masked) -> [B]; column "1" counts the cases. One [B, G] x [G, k] product per
    table instead of one per metric: the products dominate the cost of the simple metrics.
    """
    key = (id(t), "totals")
    if key not in w.memo:
        cols = [c for c in _numeric_columns() if t.has(c)]
        m, ones = t.mask(), np.ones(len(t.frame))
        x = np.stack([t.clean(c) for c in cols] + [m * t.clean(c) for c in cols] + [ones, m],
                     axis=1)
        names = [(c, False) for c in cols] + [(c, True) for c in cols] + [("1", False),
                                                                           ("1", True)]
        w.memo[key] = dict(zip(names, w.sum(x).T))
    return w.memo[key]  # type: ignore[return-value]


def _numeric_columns() -> list[str]:
    return sorted({c for s in SPECS.values() for c in s.columns if c not in TEXT_COLUMNS})


def _sums(t: TaskTable, w: Weights, cols: tuple[str, ...], masked: bool) -> list[np.ndarray]:
    tot = _totals(t, w)
    return [tot[c, masked] for c in cols]


def ratio_spec(key: str, num: str, den: str, masked: bool = False) -> MetricSpec:
    """sum(num) / sum(den) over the counted cases (micro precision, recall, ACC50)."""
    def fn(t: TaskTable, w: Weights) -> np.ndarray:
        a, b = _sums(t, w, (num, den), masked)
        return ratio(a, b)
    return MetricSpec(key, (num, den), fn, masked=masked)


def f1_spec(key: str, hit: str, pred: str, gold: str, masked: bool = False) -> MetricSpec:
    """2PR/(P+R) with P, R micro over cases; 0 when P + R = 0."""
    def fn(t: TaskTable, w: Weights) -> np.ndarray:
        h, p, g = _sums(t, w, (hit, pred, gold), masked)
        prec, rec = ratio(h, p), ratio(h, g)
        return ratio(2 * prec * rec, prec + rec)
    return MetricSpec(key, (hit, pred, gold), fn, masked=masked)


def sum_spec(key: str, col: str, direction: int = 1) -> MetricSpec:
    return MetricSpec(key, (col,), lambda t, w: _totals(t, w)[col, False], direction=direction)


def case_f1_spec(key: str, kind: str) -> MetricSpec:
    """Mean per-case keyword F1 over reference cases with a keyword on either side."""
    cols = (f"{kind}_n_hits", f"{kind}_n_pred", f"{kind}_n_gold")

    def parts(t: TaskTable) -> tuple[np.ndarray, np.ndarray]:
        h, p, g = (t.clean(c) for c in cols)
        return ratio(2 * h, p + g), t.mask() * ((p + g) > 0)

    return MetricSpec(key, cols, _mean_fn(parts), parts, masked=True)


BLEU_COLUMNS = ("bleu_matches", "bleu_totals", "n_words", "gt_n_words")


def _bleu(t: TaskTable, w: Weights) -> np.ndarray:
    """nltk corpus_bleu (BLEU-4, no smoothing: a zero order counts as float_info.min)."""
    x = np.column_stack([t.lists("bleu_matches", 4), t.lists("bleu_totals", 4),
                         t.clean("n_words"), t.clean("gt_n_words")])
    key = (id(t), "bleu")
    if key not in w.memo:
        w.memo[key] = w.sum(t.mask()[:, None] * x)
    s = w.memo[key]
    return bleu4_from_counts(s[..., 0:4], s[..., 4:8], s[..., 8], s[..., 9])


def _binary_f1(t: TaskTable, w: Weights) -> np.ndarray:
    """F1 with positive = abnormal (an unanswered case is read as not abnormal)."""
    gt, pr = ((t.text(c) == "abnormal") * 1.0 for c in ("gt_binary", "pred_binary"))
    tp, fp, fn = _sums_of(t, w, gt * pr, (1 - gt) * pr, gt * (1 - pr))
    return np.where(tp > 0, ratio(2 * tp, 2 * tp + fp + fn), 0.0)


def _sums_of(t: TaskTable, w: Weights, *cols: np.ndarray) -> list[np.ndarray]:
    m = t.mask()
    return list(w.sum(np.stack([m * c for c in cols], axis=1)).T)


def _coco_ap(t: TaskTable, w: Weights, index: int) -> np.ndarray:
    """AP at COCO_THRESHOLDS[index] on every resample (NaN when no gold box is drawn)."""
    flags = t.memo("coco_flags", lambda: coco_resample.parse_flags(
        [c if isinstance(c, str) else "" for c in t.frame["coco_tp"]], len(COCO_THRESHOLDS)))
    key = (id(t), "coco", index)
    if key not in w.memo:
        n_gold = t.clean("n_gold").astype(np.int64)
        gold = ("coco_gold", n_gold.tobytes())  # the same gold boxes in every run
        if gold not in w.memo:
            w.memo[gold] = coco_resample.recall_bins(w.rows, n_gold)
        ds = (id(t), "coco_draws")
        if ds not in w.memo:
            n_det = flags[0].tp + flags[0].fp  # type: ignore[index]
            w.memo[ds] = coco_resample.draw_set(w.rows, n_det, *w.memo[gold])
        w.memo[key] = coco_resample.average_precision(flags[index], w.memo[ds])  # type: ignore[index]
    return w.memo[key]


def coco_spec(key: str, indices: tuple[int, ...]) -> MetricSpec:
    """pycocotools' mean precision over the given thresholds; 0 when no gold box is drawn."""
    def fn(t: TaskTable, w: Weights) -> np.ndarray:
        aps = np.stack([_coco_ap(t, w, i) for i in indices], axis=-1)
        return np.nan_to_num(aps.mean(axis=-1), nan=0.0)
    return MetricSpec(key, ("coco_tp", "n_gold"), fn)


def _labels(t: TaskTable) -> tuple[sparse.csc_matrix, sparse.csc_matrix]:
    """[G, L] counts of counted rows per cluster and label: truths, and predictions (if any)."""
    def make() -> tuple[sparse.csc_matrix, sparse.csc_matrix]:
        gt, pr = t.text("truth_label"), t.text("predicted_label")
        vocab = {lab: i for i, lab in enumerate(sorted(set(gt) | set(pr)))}
        m = t.mask() > 0
        mats = []
        for labs, keep in ((gt, m), (pr, m & (pr != ""))):
            rows = t.codes[keep]
            cols = np.array([vocab[lab] for lab in labs[keep]], dtype=np.intp)
            mats.append(sparse.csc_matrix((np.ones(len(rows)), (rows, cols)),
                                          shape=(t.n_clusters, len(vocab))))
        return mats[0], mats[1]
    return t.memo("label_counts", make)  # type: ignore[return-value]


def _label_counts(a: sparse.csc_matrix, w: Weights) -> np.ndarray:
    return np.asarray((a.T @ w.counts.T).T)  # [B, L]


def _coverage(t: TaskTable, w: Weights) -> np.ndarray:
    gt, pr = (_label_counts(a, w) > 0 for a in _labels(t))
    return ratio((gt & pr).sum(axis=1), gt.sum(axis=1))


def _entropy(t: TaskTable, w: Weights) -> np.ndarray:
    n = _label_counts(_labels(t)[1], w)
    total = n.sum(axis=1, keepdims=True)
    p = ratio(n, np.broadcast_to(total, n.shape))
    logs = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1) + 0.0  # + 0.0: no -0.0


def _specs() -> list[MetricSpec]:
    L, C, D = "localization/", "captioning/", "diagnosis/"
    out = [mean_spec(L + "mAP30", "ap30"), mean_spec(L + "mAP50", "ap50"),
           mean_spec(L + "mAP50_95", "ap50_95"), ratio_spec(L + "ACC50", "detected50", "n_gold"),
           sum_spec(L + "TP30", "detected30"),
           sum_spec(L + "FP30", "false_positives30", direction=-1),
           coco_spec(L + "coco_mAP30", (0,)), coco_spec(L + "coco_mAP50", (1,)),
           coco_spec(L + "coco_mAP50_95", tuple(range(1, len(COCO_THRESHOLDS))))]
    for tag in ("30", "50"):
        out += [ratio_spec(f"{L}precision{tag}", f"matched{tag}", "n_pred"),
                ratio_spec(f"{L}recall{tag}", f"matched{tag}", "n_gold"),
                f1_spec(f"{L}f1_{tag}", f"matched{tag}", "n_pred", "n_gold")]
    out += [mean_spec(L + "hit30", "best_iou_excl", transform=lambda x: (x >= 0.30) * 1.0),
            mean_spec(L + "hit50", "best_iou_excl", transform=lambda x: (x >= 0.50) * 1.0),
            mean_spec(L + "mean_iou", "best_iou_excl")]
    for kind in ("clinical", "modality"):
        h, p, g = f"{kind}_n_hits", f"{kind}_n_pred", f"{kind}_n_gold"
        out += [ratio_spec(f"{C}{kind}_precision", h, p, masked=True),
                ratio_spec(f"{C}{kind}_recall", h, g, masked=True),
                f1_spec(f"{C}{kind}_f1", h, p, g, masked=True),
                case_f1_spec(f"{C}{kind}_f1_case_mean", kind)]
    out += [MetricSpec(C + "bleu", BLEU_COLUMNS, _bleu, masked=True),
            mean_spec(C + "meteor", "meteor", masked=True),
            mean_spec(C + "binary_accuracy", "binary_correct", masked=True),
            MetricSpec(C + "binary_f1", ("gt_binary", "pred_binary"), _binary_f1, masked=True),
            f1_spec(C + "binary_keyword_f1", "binary_keyword_n_hits", "binary_keyword_n_pred",
                    "binary_keyword_n_gold", masked=True),
            _mean_words()]
    out += [mean_spec(D + "top1", "top1", masked=True), mean_spec(D + "top5", "top5", masked=True),
            MetricSpec(D + "coverage", LABEL_COLUMNS, _coverage, masked=True,
                       centred=True, bounds=(0.0, 1.0)),
            MetricSpec(D + "entropy", LABEL_COLUMNS, _entropy, direction=0,
                       masked=True, centred=True, bounds=(0.0, None))]
    return out


def _mean_words() -> MetricSpec:
    """Mean words per answer over the answers with a word (language_stats' mean_words)."""
    def parts(t: TaskTable) -> tuple[np.ndarray, np.ndarray]:
        n = t.clean("n_words")
        return n, (n > 0) * 1.0
    return MetricSpec("captioning/mean_words", ("n_words",), _mean_fn(parts), parts, direction=0)


SPECS: dict[str, MetricSpec] = {s.key: s for s in _specs()}
#: Columns a task's table needs for any metric: captioning and diagnosis must say which
#: cases have a reference (tables of metric-definition version 1 do not).
TASK_COLUMNS: dict[str, tuple[str, ...]] = {"captioning": (MASK,), "diagnosis": (MASK,)}

_COUNTS = "a count of answers or calls (bookkeeping, not a score of the answers)"
_USAGE = "usage or cost of the run, not a score of the answers"
_GT = "describes the ground truth: the same for every run on the same cases"
_DISTINCT = ("a count of distinct items over the corpus: a resample repeats cases, so it has "
             "no per-case decomposition and its resampled values are biased low")
SKIPPED: dict[str, str] = {
    "localization/GT": _GT,
    **{f"captioning/{k}": _DISTINCT for k in ("vocab_size", "unique_captions",
                                               "unique_captions_normalized")},
    **{f"captioning/gt_{k}": _GT for k in ("vocab_size", "unique_captions",
                                            "unique_captions_normalized", "mean_words")},
    "captioning/no_reference": _GT, "diagnosis/no_reference": _GT, "diagnosis/gt_entropy": _GT,
    **{f"{t}/{k}": _COUNTS for t in ("localization", "captioning", "diagnosis")
       for k in ("n_cases", "answered", "missing", "parse_failures", "api_errors", "refused")},
    **{f"{t}/{k}": _USAGE for t in ("localization", "captioning", "diagnosis")
       for k in ("input_tokens", "output_tokens", "latency_p50_s", "latency_p95_s",
                 "cost_usd", "cost_usd_uncached")},
    **{f"{t}/{k}": _COUNTS for t in ("localization", "captioning", "diagnosis")
       for k in ("cached", "retries")},
    **{f"run/{k}": _COUNTS for k in ("requests", "cache_hits", "retries")},
    **{f"diagnosis/judge_{k}": _USAGE for k in ("calls", "cache_hits", "shortcuts", "unreadable",
                                                "api_errors", "input_tokens", "output_tokens",
                                                "cost_usd")},
}


def evaluate(spec: MetricSpec, table: TaskTable, weights: Weights) -> np.ndarray:
    """The metric on every row of `weights` ([B] floats)."""
    return np.asarray(spec.fn(table, weights), dtype=float).reshape(-1)

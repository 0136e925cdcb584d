"""Per-case components and metric specs: at unit weights they are the package's scalar metrics."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from fractions import Fraction

import numpy as np
import pytest

from nova_mlflow.analysis.comparison import StatsConfig, align
from nova_mlflow.analysis.metric_specs import SKIPPED, SPECS, evaluate
from nova_mlflow.analysis.stats import Weights
from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.metrics import localization as loc
from nova_mlflow.metrics.coco import THRESHOLDS, coco_inputs, coco_map
from nova_mlflow.metrics.components import (
    bleu_counts,
    coco_tp_flags,
    localization_components,
)
from nova_mlflow.metrics.hit_rate import best_iou
from nova_mlflow.metrics.language import language_stats, words
from nova_mlflow.schemas import Box
from nova_mlflow.scoring.captioning import case_row as caption_row
from nova_mlflow.scoring.captioning import text_metrics
from nova_mlflow.testing.synthetic_cases import nova_like_case_ids, simulate_run, tables


@pytest.fixture(scope="module")
def run():
    ids = nova_like_case_ids(90, seed=21)
    return sorted(simulate_run(ids, 0.4, seed=8), key=lambda s: s.filename)


def _expected(slices) -> dict[str, float]:
    """Every metric from the package's own scalar functions (what scoring logs)."""
    images = [(s.preds, s.golds) for s in slices]  # filename order, as scoring passes COCO
    out = {f"localization/{k}": v for k, v in {**loc.nova_protocol(images), **coco_map(images),
                                                **loc.prf_metrics(images)}.items()}
    ref = [s for s in slices if s.gt_caption]
    m = text_metrics([s.gt_caption for s in ref], [s.pred_caption for s in ref],
                     [s.meteor for s in ref])
    out |= {f"captioning/{k}": v for k, v in m.items()}
    out["captioning/mean_words"] = language_stats([s.pred_caption for s in slices]).mean_words
    scored = [s for s in slices if s.has_reference]
    ranks = [s.rank for s in scored]
    given = [s.pred_label for s in scored if s.pred_label]
    out |= {"diagnosis/top1": dx.top_k(ranks, 1), "diagnosis/top5": dx.top_k(ranks, 5),
            "diagnosis/coverage": dx.coverage(given, [s.truth for s in scored]),
            "diagnosis/entropy": dx.entropy_bits(given)}
    # hit rate and mean best IoU (a later issue), from pycocotools' exclusive-size IoU
    from pycocotools import mask as mask_utils

    best = [float(np.max(mask_utils.iou([[b.x1, b.y1, b.width, b.height] for b in s.preds],
                                        [[b.x1, b.y1, b.width, b.height] for b in s.golds],
                                        [0] * len(s.golds))))
            if s.preds and s.golds else 0.0 for s in slices]
    out |= {"localization/hit30": np.mean([b >= 0.3 for b in best]),
            "localization/hit50": np.mean([b >= 0.5 for b in best]),
            "localization/mean_iou": float(np.mean(best))}
    return out


def test_every_metric_at_unit_weights_is_the_package_scalar_metric(run):
    expected = _expected(run)
    t = tables(run)
    seen = set()
    for task in ("localization", "captioning", "diagnosis"):
        al = align(task, {"r": t[task]}, StatsConfig(resamples=10))
        unit = Weights.unit(al.codes, len(al.clusters))
        for key, spec in SPECS.items():
            if spec.task == task:
                got = float(evaluate(spec, al.tables[0], unit)[0])
                assert got == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
                seen.add(key)
    assert seen == set(SPECS) and len(seen) == 36
    assert 0 < expected["localization/coco_mAP50_95"] < expected["localization/coco_mAP30"] < 1
    assert not set(SPECS) & set(SKIPPED)


def test_coco_ap_on_weighted_draws_is_pycocotools_on_duplicated_images(run):
    sub = run[:40]
    t = tables(sub)["localization"]
    al = align("localization", {"r": t}, StatsConfig(resamples=10))
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 4, size=(6, len(al.clusters))).astype(float)
    counts[0] = 1  # the sample itself
    counts[1, :] = 0
    counts[1, 0] = 3  # only the first case, three times
    w = Weights(counts, al.codes)
    got = {k: evaluate(SPECS[f"localization/{k}"], al.tables[0], w)
           for k in ("coco_mAP30", "coco_mAP50", "coco_mAP50_95")}
    for b in range(len(counts)):
        images = [(s.preds, s.golds) for i, s in enumerate(sub) for _ in range(w.rows[i, b])]
        ref = coco_map(images)  # each copy its own image id, in filename order
        for k, v in got.items():
            assert v[b] == pytest.approx(ref[k], abs=1e-12), (k, b)


def test_coco_flags_are_the_matches_pycocotools_makes():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    g = [Box(x1=10, y1=10, x2=60, y2=60), Box(x1=100, y1=100, x2=180, y2=150)]
    preds = [Box(x1=12, y1=8, x2=58, y2=64), Box(x1=14, y1=12, x2=62, y2=58),  # 2 on gold 0
             Box(x1=300, y1=300, x2=320, y2=330), Box(x1=95, y1=110, x2=170, y2=160)]
    images = [(preds, g), (preds[::-1], g), ([], g), (preds[:2], [])]
    gt, dets = coco_inputs(images)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.params.iouThrs = THRESHOLDS
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
    for image_id, (p, gold) in enumerate(images, start=1):
        e = ev.evalImgs[image_id - 1]
        want = ["".join("1" if x > 0 else "0" for x in row) for row in e["dtMatches"]] if p else []
        assert coco_tp_flags(p, gold) == want
    assert coco_tp_flags(preds, g)[0] == "1001"  # 2nd box: gold 0 is taken; 3rd: far away


def test_bleu_counts_are_nltks_and_corpus_bleu_handles_an_order_without_overlap():
    from nltk.translate.bleu_score import modified_precision

    rng = np.random.default_rng(4)
    vocab = list("abcdefg")
    for _ in range(50):
        ref = list(rng.choice(vocab, rng.integers(0, 9)))
        hyp = list(rng.choice(vocab, rng.integers(0, 9)))
        for n in range(1, 5):
            m, c = bleu_counts(ref, hyp, n)
            p = modified_precision([ref], hyp, n)
            assert (m, c) == (p.numerator, p.denominator)
            assert isinstance(p, Fraction)
    # no 4-gram in common anywhere: nltk's BLEU is tiny but not 0 (float_info.min)
    gts, preds = ["mass in the left frontal lobe", "edema"], ["mass in the right lobe", "edema"]
    t = tables_from_captions(gts, preds)
    al = align("captioning", {"r": t}, StatsConfig(resamples=10))
    got = evaluate(SPECS["captioning/bleu"], al.tables[0], Weights.unit(al.codes, 2))[0]
    want = cap.corpus_bleu4([words(x) for x in gts], [words(x) for x in preds])
    assert 0 < want < 1e-50 and got == pytest.approx(want, rel=1e-12)
    assert sys.float_info.min > 0


def tables_from_captions(gts: list[str], preds: list[str]):
    import pandas as pd

    return pd.DataFrame([{"filename": f"c{i}_001.png", "case_id": f"c{i}",
                          **caption_row(g, p, 0.1)} for i, (g, p) in enumerate(zip(gts, preds))])


def test_component_columns_are_json_scalars_and_best_iou_excl_is_pycocotools():
    from pycocotools import mask as mask_utils

    from nova_mlflow.schemas import LocalizationPrediction
    from nova_mlflow.scoring.localization import case_row

    p = [Box(x1=0, y1=0, x2=10, y2=10), Box(x1=5, y1=5, x2=5, y2=20)]  # one box has no area
    g = [Box(x1=5, y1=0, x2=15, y2=10)]
    ref = mask_utils.iou([[b.x1, b.y1, b.width, b.height] for b in p],
                         [[b.x1, b.y1, b.width, b.height] for b in g], [0])
    assert best_iou([b.as_list() for b in p], [b.as_list() for b in g]) == pytest.approx(
        ref.max(), abs=1e-12)
    parts = localization_components(p, g)
    assert json.loads(json.dumps(parts)) == parts
    assert all(isinstance(v, (int, float, str)) for v in parts.values())
    assert json.loads(parts["coco_tp"]) == coco_tp_flags(p, g)
    row = case_row(LocalizationPrediction(boxes=p, as_written=[b.as_list() for b in p]), g)
    assert row["best_iou_excl"] == pytest.approx(1 / 3) and parts.items() <= row.items()
    empty = case_row(None, [])
    assert (empty["coco_tp"], empty["best_iou_excl"], empty["ap30"]) == ("[]", 0.0, 0.0)
    c = caption_row(None, "axial flair mass", None)
    assert c == {"has_reference": 0, "n_words": 3}  # no reference: counted in no metric
    c = caption_row("flair mass in the pons", "axial flair mass", None)
    assert (c["has_reference"], c["meteor"], c["clinical_n_pred"], c["modality_n_pred"],
            c["clinical_n_gold"], c["clinical_n_hits"]) == (1, 0.0, 1, 2, 2, 1)
    assert json.loads(c["bleu_matches"])[:2] == [2, 1] and json.loads(c["bleu_totals"]) == [
        3, 2, 1, 1]

"""Case-clustered statistics: against independent formulas, naive loops and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nova_mlflow.analysis import StatsConfig, compare_tables, gate, gate_decision
from nova_mlflow.analysis.stats import (
    Weights,
    adjust_p,
    bootstrap_p,
    cluster_draws,
    cr1_se,
    mde,
    mean_influence,
    percentile_ci,
    wald_p,
)
from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics.coco import coco_map
from nova_mlflow.testing.synthetic_cases import nova_like_case_ids, simulate_run, tables

IDS = nova_like_case_ids(281, seed=3)  # NOVA-like: 281 cases, 1-17 slices each


def _codes(ids: list[str]) -> np.ndarray:
    return np.unique(ids, return_inverse=True)[1]


def _dx_table(ids: list[str], top1: np.ndarray, **extra) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({"filename": [f"{c}_{i:04d}.png" for i, c in enumerate(ids)],
                         "case_id": ids, "top1": top1.astype(int), "top5": top1.astype(int),
                         "predicted_label": ["x"] * n, "truth_label": ["x"] * n,
                         "has_reference": np.ones(n, int), **extra})


def _clustered_outcomes(rng: np.random.Generator, codes: np.ndarray, p: float,
                        shape: tuple[int, ...] = ()) -> np.ndarray:
    """0/1 per slice: one outcome per case, kept by 95% of its slices (the rest flipped)."""
    g = codes.max() + 1
    case = rng.random(shape + (g,)) < p
    flip = rng.random(shape + (len(codes),)) < 0.05
    return (case[..., codes] ^ flip).astype(float)


# --- Must show 1: the case-clustered bootstrap SE of a mean agrees with CR1 ------------------

def test_cluster_bootstrap_se_agrees_with_the_cr1_sandwich_formula():
    rng = np.random.default_rng(11)
    codes = _codes(IDS)
    g, n = codes.max() + 1, len(codes)
    y = _clustered_outcomes(rng, codes, 0.4)
    # CR1 written out independently: OLS on a constant, clustered sandwich, Stata's factor
    x = np.ones((n, 1))
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    e = y - x @ beta
    bread = np.linalg.inv(x.T @ x)
    scores = np.array([x[codes == c].T @ e[codes == c] for c in range(g)])  # [G, 1]
    v = g / (g - 1) * (n - 1) / (n - 1) * bread @ (scores.T @ scores) @ bread
    se_cr1 = math.sqrt(v[0, 0])

    comp = compare_tables({"a": {"diagnosis": _dx_table(IDS, y)}}, "a",
                          StatsConfig(resamples=4000, metrics=("diagnosis/top1",)))
    ms = comp.metrics["diagnosis/top1"]
    se_boot = float(np.std(ms.boot[0], ddof=1))
    assert abs(se_boot / se_cr1 - 1) < 0.10
    assert ms.runs["a"].se == pytest.approx(se_cr1, rel=1e-10)  # the engine reports CR1
    assert ms.se_method == "cr1" and ms.n_clusters == g
    # ignoring the clusters would claim far more precision than the data has
    assert np.std(y, ddof=1) / math.sqrt(n) < 0.7 * se_cr1


def test_cr1_of_a_masked_mean_counts_only_clusters_with_a_counted_case():
    codes = np.array([0, 0, 1, 1, 2, 3])
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 5.0])
    m = np.array([1, 1, 1, 1, 1, 0])  # cluster 3 holds no counted case
    u = mean_influence(y, m)
    mean = 3 / 5
    totals = [(1 - mean) + (0 - mean), 2 * (1 - mean), 0 - mean]
    expected = math.sqrt(3 / 2 * sum(t * t for t in totals)) / 5
    assert cr1_se(u, codes, m > 0) == pytest.approx(expected, rel=1e-12)


# --- Must show 2: corpus metrics equal a naive case-resampling loop --------------------------

def _resampled(items: list, case_ids: list[str], counts: np.ndarray, clusters: tuple) -> list:
    """The slices of a draw in filename order, each as often as its case was drawn."""
    index = {c: i for i, c in enumerate(clusters)}
    return [it for it, c in zip(items, case_ids) for _ in range(int(counts[index[c]]))]


def test_coco_map_interval_equals_a_loop_running_pycocotools_on_resamples():
    ids = nova_like_case_ids(35, seed=5)
    run_a = sorted(simulate_run(ids, 0.0, seed=21), key=lambda s: s.filename)
    run_b = sorted(simulate_run(ids, 0.6, seed=22), key=lambda s: s.filename)
    cfg = StatsConfig(resamples=100, seed=9, metrics=("localization/coco_mAP30",
                                                      "localization/coco_mAP50_95"))
    comp = compare_tables({"a": {"localization": tables(run_a)["localization"]},
                           "b": {"localization": tables(run_b)["localization"]}}, "a", cfg)
    draws = cluster_draws([s.case_id for s in run_a], cfg.resamples, cfg.seed)  # same draws
    found = []  # per run, per draw: pycocotools on the resampled images (duplicates kept)
    for run in (run_a, run_b):
        images = [(s.preds, s.golds) for s in run]
        found.append([coco_map(_resampled(images, [s.case_id for s in run], counts,
                                          draws.clusters)) for counts in draws.counts])
    for key in cfg.metrics:
        loops = [np.array([r[key.split("/")[1]] for r in run]) for run in found]
        ms = comp.metrics[key]
        np.testing.assert_allclose(ms.boot, np.stack(loops), rtol=0, atol=1e-12)
        lo, hi = percentile_ci(loops[1], cfg.level)
        assert (ms.runs["b"].ci_low, ms.runs["b"].ci_high) == pytest.approx((lo, hi), abs=1e-12)
        dlo, dhi = percentile_ci(loops[1] - loops[0], cfg.level)
        assert ms.runs["b"].delta_low == pytest.approx(dlo, abs=1e-12)
        assert ms.runs["b"].delta_high == pytest.approx(dhi, abs=1e-12)


def test_micro_clinical_f1_and_bleu_equal_a_loop_over_the_package_functions():
    ids = nova_like_case_ids(70, seed=6)
    run = sorted(simulate_run(ids, 0.3, seed=31), key=lambda s: s.filename)
    cfg = StatsConfig(resamples=150, seed=4, metrics=("captioning/clinical_f1",
                                                      "captioning/bleu"))
    comp = compare_tables({"a": {"captioning": tables(run)["captioning"]}}, "a", cfg)
    draws = cluster_draws(ids, cfg.resamples, cfg.seed)
    ref = [s for s in run if s.gt_caption]  # text metrics count the cases with a reference
    matches = [cap.match(cap.keywords(s.pred_caption).clinical, cap.keywords(s.gt_caption).clinical)
               for s in ref]
    pairs = [(cap.words(s.gt_caption), cap.words(s.pred_caption)) for s in ref]
    f1, bleu = [], []
    for counts in draws.counts:
        f1.append(cap.corpus_prf(_resampled(matches, [s.case_id for s in ref], counts,
                                            draws.clusters))["f1"])
        drawn = _resampled(pairs, [s.case_id for s in ref], counts, draws.clusters)
        bleu.append(cap.corpus_bleu4([r for r, _ in drawn], [h for _, h in drawn]))
    np.testing.assert_allclose(comp.metrics["captioning/clinical_f1"].boot[0], f1, atol=1e-12)
    np.testing.assert_allclose(comp.metrics["captioning/bleu"].boot[0], bleu, rtol=1e-12,
                               atol=1e-15)
    assert comp.metrics["captioning/clinical_f1"].runs["a"].ci_low == pytest.approx(
        percentile_ci(np.array(f1))[0], abs=1e-12)


# --- Must show 3: calibration of the gate by simulation ---------------------------------------

def _gate_rule(y: np.ndarray, cluster_ids: list, alpha: float = 0.05) -> list[tuple]:
    """The gate's rule on one metric (a mean over slices), as the engine applies it by default,
    for each simulated pair y[sim] = [champion, challenger] (0/1 per slice): the paired
    percentile CI of the draws, the t test on the CR1 SE of the paired delta (G - 1 df),
    Holm over one test. Returns (delta_low, p, promoted) per pair. The real gate agrees with
    it to the last digit (next test); this loop runs 500 pairs in about a second."""
    codes = _codes([str(c) for c in cluster_ids])
    draws = cluster_draws(cluster_ids, 2000, 20250514)
    w = Weights(draws.counts, codes)
    n = w.sum(np.ones(y.shape[-1]))  # [B] slices per draw
    g = codes.max() + 1
    out = []
    for champion, challenger in y:
        d = (w.sum(challenger) - w.sum(champion)) / n  # paired delta on every draw
        lo, _ = percentile_ci(d)
        delta = challenger.mean() - champion.mean()
        se = cr1_se(mean_influence(challenger) - mean_influence(champion), codes)
        p = adjust_p([wald_p(delta, se, g - 1)], "holm")[0]
        out.append((lo, p, bool(lo > 0 and p < alpha)))
    return out


def test_gate_promotes_equal_runs_at_most_alpha_plus_two_percent_slice_bootstrap_far_more():
    rng = np.random.default_rng(2024)
    codes = _codes(IDS)
    y = _clustered_outcomes(rng, codes, 0.35, shape=(500, 2))  # same true accuracy, both runs
    clustered = np.mean([r[2] for r in _gate_rule(y, IDS)])
    by_slice = np.mean([r[2] for r in _gate_rule(y, list(range(len(IDS))))])  # control:
    # the same rule with every slice its own resampling unit (a slice-level bootstrap)
    assert clustered <= 0.05 + 0.02
    assert by_slice > 0.10 and by_slice > 3 * clustered  # measured: 1.8% vs 14.0%


def test_gate_through_the_tables_is_the_rule_above_and_finds_a_real_gain():
    rng = np.random.default_rng(7)
    codes = _codes(IDS)
    y = _clustered_outcomes(rng, codes, 0.35, shape=(6, 2))
    y[5, 1] = np.maximum(y[5, 0], _clustered_outcomes(rng, codes, 0.2))  # solves more cases
    for sim, (lo, p, promoted) in zip(y, _gate_rule(y, IDS)):
        decision, comp = gate({"diagnosis": _dx_table(IDS, sim[0])},
                              {"diagnosis": _dx_table(IDS, sim[1])}, ["diagnosis/top1"])
        (check,) = decision.checks
        assert check.gain_low == pytest.approx(lo, abs=1e-12)
        assert check.p_adjusted == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert decision.promote == promoted
        assert comp.config.p_method == "wald" and comp.config.adjust == "holm"
    assert decision.promote and check.gain_low > 0  # the last pair: a real gain


# --- the pieces ---------------------------------------------------------------------------------

def test_holm_and_bh_match_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005 0.01 0.03 0.04 times 4 3 2 1 = .02 .03 .06 .04, running max
    assert adjust_p(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: times 4/1 4/2 4/3 4/4 = .02 .02 .04 .04, running min from the top
    assert adjust_p(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p(p, "none") == p
    assert adjust_p([0.5, 0.9], "holm") == [1.0, 1.0]  # capped at 1, then kept monotone
    with pytest.raises(ValueError):
        adjust_p(p, "bonferroni")


def test_bootstrap_p_and_mde_follow_their_stated_formulas():
    assert bootstrap_p(np.zeros(100)) == 1.0  # identical runs
    d = np.r_[np.full(90, 0.1), np.full(10, -0.1)]
    assert bootstrap_p(d) == pytest.approx(0.2)  # 2 * min(10, 90) / 100
    assert bootstrap_p(np.full(50, 0.3)) == pytest.approx(1 / 50)  # floored at 1/B
    assert mde(1.0, 0.05, 0.8) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert wald_p(0.0, 0.0) == 1.0 and wald_p(0.02, 0.01) == pytest.approx(0.0455, abs=1e-4)


def test_wald_p_is_not_floored_so_holm_over_many_tests_can_pass():
    ids = nova_like_case_ids(200, seed=1)
    a, b = tables(simulate_run(ids, -0.5, seed=1)), tables(simulate_run(ids, 1.0, seed=2))
    boot = compare_tables({"a": a, "b": b}, "a", StatsConfig(resamples=500,
                                                             p_method="bootstrap"))
    wald = compare_tables({"a": a, "b": b}, "a", StatsConfig(resamples=500))  # the default
    rb, rw = (c.metrics["diagnosis/top1"].runs["b"] for c in (boot, wald))
    assert rb.p_value == 1 / 500 and rb.p_adjusted > 0.05 and boot.notes  # floored, flagged
    assert rw.p_value < 1e-6 and rw.p_adjusted < 0.05 and not wald.notes
    assert rw.delta_low == rb.delta_low and rw.mde == rb.mde  # only the p differs


def test_draws_are_reproducible_whole_cases_and_independent_of_row_order():
    a = cluster_draws(IDS, 50, seed=1)
    assert np.array_equal(a.counts, cluster_draws(list(reversed(IDS)), 50, seed=1).counts)
    assert not np.array_equal(a.counts, cluster_draws(IDS, 50, seed=2).counts)
    assert (a.counts.sum(axis=1) == len(set(IDS))).all()  # G cases drawn each time
    rows = Weights(a.counts, np.searchsorted(a.clusters, IDS)).rows
    for c in ("case0000", "case0001"):
        cols = [i for i, x in enumerate(IDS) if x == c]
        assert (rows[cols] == rows[cols[:1]]).all()  # every slice of a drawn case comes along


def test_identical_runs_have_zero_delta_p_one_and_are_not_promoted():
    t = tables(simulate_run(nova_like_case_ids(60, seed=2), 0.2, seed=5))
    comp = compare_tables({"a": t, "b": t}, "a", StatsConfig(resamples=200))
    assert len(comp.metrics) == 36
    for ms in comp.metrics.values():
        rs = ms.runs["b"]
        assert (rs.delta, rs.delta_low, rs.delta_high, rs.p_value, rs.p_adjusted, rs.mde) == (
            0.0, 0.0, 0.0, 1.0, 1.0, 0.0), ms.key
        assert ms.runs["a"].delta is None and ms.runs["a"].p_adjusted is None
    assert not gate_decision(comp, "b", ["localization/mAP30"]).promote


def test_json_keys_left_out_cases_and_skipped_metrics_are_reported():
    ids = nova_like_case_ids(40, seed=8)
    a, b = tables(simulate_run(ids, 0.0, seed=1)), tables(simulate_run(ids, 0.5, seed=2))
    b["diagnosis"] = b["diagnosis"].iloc[5:]  # run b misses five diagnosis slices
    b["captioning"] = b["captioning"].drop(columns=["bleu_totals"])
    b["localization"].loc[3, "coco_tp"] = None  # a row scored without its COCO matches
    b["captioning"].loc[b["captioning"]["has_reference"] == 0, "meteor"] = None  # not counted
    comp = compare_tables({"a": a, "b": b}, "a", StatsConfig(resamples=100))
    js = comp.to_json()
    assert js["cluster"] == "case_id" and js["n_clusters"] == 40
    assert js["left_out"]["diagnosis"] == {"a": 5, "b": 0}
    assert js["metrics"]["diagnosis/top1"]["n_cases"] == len(ids) - 5
    assert "bleu_totals" in js["skipped"]["captioning/bleu"]
    assert "1 counted case(s) have no value in column coco_tp" in js["skipped"][
        "localization/coco_mAP30"]
    assert "captioning/meteor" in js["metrics"] and "localization/mAP30" in js["metrics"]
    assert "distinct" in js["skipped"]["captioning/vocab_size"]
    keys = {"value", "ci_low", "ci_high", "se", "delta", "delta_low", "delta_high", "p_value",
            "p_adjusted", "mde"}
    assert keys <= set(js["metrics"]["localization/mAP30"]["runs"]["b"])
    assert js["metrics"]["localization/mAP30"]["runs"]["a"]["p_adjusted"] is None
    b["localization"] = b["localization"].assign(case_id="other")
    with pytest.raises(ValueError, match="case_ids"):
        compare_tables({"a": a, "b": b}, "a", StatsConfig(resamples=100))


def test_shared_cases_passed_by_the_caller_are_used_and_counted():
    ids = nova_like_case_ids(30, seed=9)
    a = tables(simulate_run(ids, 0.0, seed=1))
    keep = sorted(a["diagnosis"]["filename"])[:50]
    comp = compare_tables({"a": a, "b": a}, "a", StatsConfig(resamples=100,
                          metrics=("diagnosis/top1",)), cases={"diagnosis": keep})
    assert comp.metrics["diagnosis/top1"].n_cases == 50
    assert comp.left_out["diagnosis"] == {"a": len(ids) - 50, "b": len(ids) - 50}
    with pytest.raises(ValueError, match="shared cases"):
        compare_tables({"a": a}, "a", StatsConfig(metrics=("diagnosis/top1",)),
                       cases={"diagnosis": keep + ["nope.png"]})


def test_cases_without_reference_are_drawn_but_not_scored():
    ids = nova_like_case_ids(80, seed=4)
    rng = np.random.default_rng(3)
    y = (rng.random(len(ids)) < 0.5).astype(float)
    has_ref = (rng.random(len(ids)) > 0.2).astype(int)
    z = np.where(has_ref == 1, y, 1 - y)  # differs only where there is no reference
    comp = compare_tables({"a": {"diagnosis": _dx_table(ids, y, has_reference=has_ref)},
                           "b": {"diagnosis": _dx_table(ids, z, has_reference=has_ref)}}, "a",
                          StatsConfig(resamples=300, metrics=("diagnosis/top1",)))
    rs = comp.metrics["diagnosis/top1"].runs
    assert rs["a"].value == pytest.approx(y[has_ref == 1].mean(), abs=1e-12)
    assert (rs["b"].delta, rs["b"].p_value) == (0.0, 1.0)


def test_gate_respects_direction_and_min_delta():
    ids = nova_like_case_ids(100, seed=12)
    a = tables(simulate_run(ids, -0.5, seed=1))
    b = tables(simulate_run(ids, 1.5, seed=2))  # far better: more TPs, fewer FPs per box
    comp = compare_tables({"a": a, "b": b}, "a", StatsConfig(resamples=500, metrics=(
        "localization/mAP30", "localization/FP30", "diagnosis/entropy")))
    fp = comp.metrics["localization/FP30"].runs["b"]
    check = gate_decision(comp, "b", ["localization/FP30"]).checks[0]
    assert check.gain == -fp.delta and check.gain_low == -fp.delta_high
    assert "direction" in gate_decision(comp, "b", ["diagnosis/entropy"]).checks[0].why
    m = comp.metrics["localization/mAP30"].runs["b"]
    assert gate_decision(comp, "b", ["localization/mAP30"], min_delta=0.0).promote
    assert not gate_decision(comp, "b", ["localization/mAP30"],
                             min_delta=m.delta_low + 1e-9).promote
    assert not gate_decision(comp, "b", ["captioning/bleu"]).promote  # not compared


def test_distinct_label_metrics_are_centred_on_the_observed_value():
    ids = nova_like_case_ids(281, seed=3)
    a = tables(simulate_run(ids, 0.0, seed=1))
    comp = compare_tables({"a": a}, "a", StatsConfig(resamples=500, metrics=(
        "diagnosis/entropy", "diagnosis/coverage", "diagnosis/top1")))
    ent = comp.metrics["diagnosis/entropy"]
    rs = ent.runs["a"]
    assert ent.centred and rs.boot_bias < -0.05  # resamples repeat cases: fewer labels
    assert rs.ci_low < rs.value < rs.ci_high
    assert ent.boot.mean() == pytest.approx(rs.value, abs=1e-9)
    assert comp.metrics["diagnosis/coverage"].boot.max() <= 1.0
    assert comp.metrics["diagnosis/top1"].runs["a"].boot_bias is None

"""`nova-mlflow compare`: paired bootstrap CIs and p-values from the runs' per-case tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import run_store
from test_gate import evaluated_run

from nova_mlflow.cli import main
from nova_mlflow.analysis.compare import case_values, compare_values, paired, parse_metric_flags
from nova_mlflow.errors import InputError


def _runs(tmp_path, experiment: str):
    client = run_store(tmp_path)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


# --- the pure part ---------------------------------------------------------------------------

def test_case_values_reads_logged_tables_and_skips_nulls():
    table = {"columns": ["filename", "meteor", "binary_correct"],
             "data": [["a.png", 0.5, True], ["b.png", None, False], ["c.png", float("nan"), True]]}
    assert case_values(table, "meteor") == {"a.png": 0.5}
    assert case_values(table, "binary_correct") == {"a.png": 1.0, "b.png": 0.0, "c.png": 1.0}
    assert case_values(table, "ap50") is None


def test_pairing_keeps_only_shared_cases_in_filename_order():
    names, m = paired([{"b": 1.0, "a": 0.0, "c": 1.0}, {"c": 0.0, "b": 1.0}])
    assert names == ["b", "c"]
    assert m.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    mc = compare_values("diagnosis/top1", [{"x": 0.0, "y": 1.0}, {"x": 1.0, "y": 1.0}],
                        baseline=1)
    assert mc.differences[1] is None and mc.differences[0].delta == -0.5


def test_metric_flags_split_and_unknown_keys_fail():
    assert parse_metric_flags(["diagnosis/top1,diagnosis/top5", "diagnosis/top1"]) == [
        "diagnosis/top1", "diagnosis/top5"]
    with pytest.raises(InputError, match="localization/mAP50"):
        parse_metric_flags(["localization/mAP50"])


# --- the command -----------------------------------------------------------------------------

def test_two_prompt_versions_side_by_side_with_cis_and_p(tmp_path, demo_dir):
    for version in ("v1", "v2"):
        res = CliRunner().invoke(main, ["run", "--limit", "8", "--no-progress", "--tasks",
                                        "diagnosis", "--experiment", "pv", "--prompt",
                                        f"diagnosis={version}"])
        assert res.exit_code == 0, res.stderr
    client, (a, b) = _runs(tmp_path, "pv")
    assert [r.data.params["prompt.diagnosis.version"] for r in (a, b)] == ["v1", "v2"]

    res = CliRunner().invoke(main, ["compare", "--run", a.info.run_id, "--run", b.info.run_id,
                                    "--json"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["baseline_run_id"] == a.info.run_id
    assert set(out["metrics"]) == {"diagnosis/top1", "diagnosis/top5"}
    for key, m in out["metrics"].items():
        assert m["n_cases"] == 8
        base, other = m["runs"][a.info.run_id], m["runs"][b.info.run_id]
        for r, run in ((base, a), (other, b)):
            assert r["ci_low"] <= r["value"] <= r["ci_high"]
            assert r["value"] == pytest.approx(run.data.metrics[key])  # same 8 cases as logged
        assert base["delta"] is None and base["p_value"] is None
        assert other["delta"] == pytest.approx(other["value"] - base["value"])
        assert other["delta_low"] <= other["delta"] <= other["delta_high"]
        assert 0 < other["p_value"] <= 1
    assert "95% CI" in res.stderr and "baseline dia-v2" in res.stderr and "p" in res.stderr

    compare_run = client.get_run(out["compare_run_id"])
    assert compare_run.info.status == "FINISHED"
    assert compare_run.info.experiment_id == a.info.experiment_id
    assert compare_run.data.tags["nova.kind"] == "compare"
    assert compare_run.data.tags["nova.baseline_run"] == a.info.run_id
    arts = _artifacts(client, compare_run.info.run_id)
    for f in ("compare/comparison.csv", "compare/comparison.html", "compare/comparison.json",
              "compare/plots/diagnosis_top1.png", "compare/plots/diagnosis_top5.png"):
        assert f in arts
    csv = pd.read_csv(client.download_artifacts(compare_run.info.run_id, "compare/comparison.csv",
                                                str(tmp_path)))
    assert len(csv) == 4 and set(csv["run_id"]) == {a.info.run_id, b.info.run_id}
    row = csv[(csv["metric"] == "diagnosis/top1") & (csv["run_id"] == b.info.run_id)].iloc[0]
    assert row["p_value"] == pytest.approx(out["metrics"]["diagnosis/top1"]["runs"][b.info.run_id]["p_value"])
    html = Path(client.download_artifacts(compare_run.info.run_id, "compare/comparison.html",
                                          str(tmp_path))).read_text()
    assert "diagnosis/top1" in html and "95% CI" in html


def test_known_difference_experiment_selection_and_baseline(tmp_path, demo_dir):
    weak = evaluated_run(tmp_path, demo_dir, 19, "weak", experiment="cmp")
    strong = evaluated_run(tmp_path, demo_dir, 43, "strong", experiment="cmp")
    res = CliRunner().invoke(main, ["compare", "--experiment", "cmp", "--json", "--no-log"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["run_id"] for r in out["runs"]] == [weak, strong]  # oldest first = baseline
    top1 = out["metrics"]["diagnosis/top1"]["runs"][strong]
    assert top1["delta"] == pytest.approx(24 / 48) and top1["delta_low"] > 0
    assert top1["p_value"] < 0.01
    assert out["compare_run_id"] is None
    assert len(_runs(tmp_path, "cmp")[1]) == 2  # --no-log: nothing logged

    res = CliRunner().invoke(main, ["compare", "--experiment", "cmp", "--baseline", strong,
                                    "--metric", "diagnosis/top1", "--json"])
    out = json.loads(res.stdout)
    assert list(out["metrics"]) == ["diagnosis/top1"]
    assert out["metrics"]["diagnosis/top1"]["runs"][weak]["delta"] == pytest.approx(-24 / 48)
    # the comparison run just logged is not itself compared next time
    res = CliRunner().invoke(main, ["compare", "--experiment", "cmp", "--json", "--no-log"])
    assert res.exit_code == 0, res.stderr
    assert len(json.loads(res.stdout)["runs"]) == 2 and len(_runs(tmp_path, "cmp")[1]) == 3


def test_runs_over_different_cases_pair_the_shared_ones(tmp_path, demo_dir):
    for limit in ("3", "6"):
        res = CliRunner().invoke(main, ["run", "--limit", limit, "--no-progress", "--tasks",
                                        "diagnosis", "--experiment", "lim"])
        assert res.exit_code == 0, res.stderr
    _, (a, b) = _runs(tmp_path, "lim")
    res = CliRunner().invoke(main, ["compare", "--run", b.info.run_id, "--run", a.info.run_id,
                                    "--json", "--no-log"])
    out = json.loads(res.stdout)
    assert out["baseline_run_id"] == b.info.run_id  # the first given
    assert out["metrics"]["diagnosis/top1"]["n_cases"] == 3
    six = out["metrics"]["diagnosis/top1"]["runs"][b.info.run_id]
    assert six["logged"] == pytest.approx(b.data.metrics["diagnosis/top1"])


def test_bad_input_exits_2_with_one_line(tmp_path, demo_dir):
    for args, needle in [(["--run", "0123456789abcdef0123456789abcdef"], "no such run"),
                         (["--experiment", "nope"], "nope"),
                         (["--metric", "localization/mAP50"], "cannot be bootstrapped")]:
        res = CliRunner().invoke(main, ["compare", *args])
        assert res.exit_code == 2, (args, res.stderr)
        lines = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow:")]
        assert len(lines) == 1 and needle in lines[0]


def test_bootstrap_is_reproducible_from_values():
    rng = np.random.default_rng(0)
    a = {f"c{i:03d}.png": float(v) for i, v in enumerate(rng.integers(0, 2, 60))}
    b = {k: 1.0 for k in a}
    one = compare_values("diagnosis/top1", [a, b])
    two = compare_values("diagnosis/top1", [dict(reversed(list(a.items()))), b])  # order-free
    assert one.differences[1] == two.differences[1] and one.intervals == two.intervals


def test_every_bootstrap_metric_is_the_mean_of_its_column(tmp_path, demo_dir):
    """Guards BOOTSTRAP_METRICS against scoring changes: paired value == logged metric."""
    from nova_mlflow.analysis.compare import BOOTSTRAP_METRICS

    res = CliRunner().invoke(main, ["run", "--limit", "4", "--no-progress", "--experiment", "all"])
    assert res.exit_code == 0, res.stderr
    res = CliRunner().invoke(main, ["compare", "--experiment", "all", "--json", "--no-log"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out["metrics"]) == set(BOOTSTRAP_METRICS) and not out["skipped"]
    for key, m in out["metrics"].items():
        (r,) = m["runs"].values()
        assert r["logged"] is not None, key
        assert r["value"] == pytest.approx(r["logged"], abs=1e-4), key  # ap30 is rounded per case

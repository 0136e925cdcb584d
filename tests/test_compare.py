"""`nova-mlflow compare`: case-clustered paired statistics over every Table 1-3 metric, from
the runs' logged per-case tables; refusal of runs that are not comparable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import run_store
from test_gate import clone_run, evaluated_run

from nova_mlflow.analysis.comparable import identity, mismatches
from nova_mlflow.analysis.metric_specs import SKIPPED, SPECS
from nova_mlflow.cli import main
from nova_mlflow.errors import InputError
from nova_mlflow.pipeline.compare import parse_metric_flags
from nova_mlflow.schemas import METRICS_VERSION

RUN_KEYS = {"value", "ci_low", "ci_high", "se", "delta", "delta_low", "delta_high", "p_value",
            "p_adjusted", "mde", "logged"}


def _runs(tmp_path, experiment: str):
    client = run_store(tmp_path)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def compare(*args: str):
    return CliRunner().invoke(main, ["compare", *args])


def one_error_line(res) -> str:
    lines = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


# --- the pure parts ----------------------------------------------------------------------------

def test_metric_flags_split_and_unknown_keys_fail():
    assert parse_metric_flags(["diagnosis/top1,localization/coco_mAP30", "diagnosis/top1"]) == [
        "diagnosis/top1", "localization/coco_mAP30"]
    assert parse_metric_flags(["captioning/vocab_size"]) == ["captioning/vocab_size"]  # listed
    with pytest.raises(InputError, match="diagnosis/top9"):
        parse_metric_flags(["diagnosis/top9"])


def test_what_identifies_a_run_for_comparison():
    base = {"dataset_digest": "aa", "full_dataset_digest": "ff", "schema_version": "2",
            "metrics_version": str(METRICS_VERSION), "judge": "none"}
    me = identity(base, {}, diagnosis=True)
    assert me == {"dataset digest": "ff", "schema version": "2",
                  "metric-definition version": str(METRICS_VERSION),
                  "diagnosis scorer": "offline matcher"}
    # a subset (--limit) of the same dataset: same full digest, comparable
    assert mismatches({"a": me, "b": identity({**base, "dataset_digest": "bb"}, {}, True)}) == []
    # tags stand in for params; a run that logged no metrics_version is version 1
    old = identity({}, {"nova.dataset_digest": "ff", "nova.schema_version": "2"}, True)
    assert old["dataset digest"] == "ff" and old["metric-definition version"] == "1"
    judge = {**base, "judge": "gpt-4o", "judge_prompt.version": "v1",
             "judge_prompt.sha256": "0123456789abcdef0123"}
    assert "gpt-4o" in identity(judge, {}, True)["diagnosis scorer"]
    assert "diagnosis scorer" not in identity(judge, {}, diagnosis=False)  # not compared


@pytest.mark.parametrize("change,aspect", [
    ({"full_dataset_digest": "other"}, "dataset digest"),
    ({"judge": "gpt-4o", "judge_prompt.version": "v1", "judge_prompt.sha256": "s1"},
     "diagnosis scorer"),  # offline matcher vs a judge model
    ({"schema_version": "1"}, "schema version"),
    ({"metrics_version": "1"}, "metric-definition version"),
])
def test_each_difference_is_named(change, aspect):
    base = {"full_dataset_digest": "ff", "schema_version": "2", "metrics_version": "2",
            "judge": "none"}
    found = mismatches({"a": identity(base, {}, True), "b": identity({**base, **change}, {}, True)})
    assert len(found) == 1 and found[0].startswith(f"{aspect} differs") and "(a)" in found[0]
    judge = {**base, "judge": "gpt-4o", "judge_prompt.version": "v1",
             "judge_prompt.sha256": "s1"}
    for other in ({"judge_prompt.version": "v2"}, {"judge_prompt.sha256": "s2"},
                  {"judge": "gpt-4.1"}):  # another judge prompt version, text or model
        assert mismatches({"a": identity(judge, {}, True),
                           "b": identity({**judge, **other}, {}, True)})


# --- the command ---------------------------------------------------------------------------------

def test_two_prompt_versions_side_by_side_with_every_statistic(tmp_path, demo_dir):
    for version in ("v1", "v2"):
        res = CliRunner().invoke(main, ["run", "--limit", "8", "--no-progress", "--tasks",
                                        "diagnosis", "--experiment", "pv", "--prompt",
                                        f"diagnosis={version}"])
        assert res.exit_code == 0, res.stderr
    client, (a, b) = _runs(tmp_path, "pv")
    assert [r.data.params["prompt.diagnosis.version"] for r in (a, b)] == ["v1", "v2"]
    assert a.data.params["metrics_version"] == str(METRICS_VERSION)
    assert a.data.tags["nova.metrics_version"] == str(METRICS_VERSION)

    res = compare("--run", a.info.run_id, "--run", b.info.run_id, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["baseline_run_id"] == a.info.run_id
    assert out["cluster"] == "case_id" and out["n_clusters"] == 4  # 8 slices of 4 demo cases
    assert out["p_method"] == "wald" and out["adjust"] == "holm" and out["resamples"] == 2000
    assert set(out["metrics"]) == {k for k in SPECS if k.startswith("diagnosis/")}
    for key, m in out["metrics"].items():
        assert m["n_cases"] == 8 and m["n_clusters"] == 4
        base, other = m["runs"][a.info.run_id], m["runs"][b.info.run_id]
        assert RUN_KEYS <= set(base) and RUN_KEYS <= set(other)
        for r, run in ((base, a), (other, b)):
            assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["se"] >= 0
            assert r["value"] == pytest.approx(run.data.metrics[key], abs=1e-12)
        assert (base["delta"], base["p_value"], base["p_adjusted"], base["mde"]) == (
            None, None, None, None)
        assert other["delta"] == pytest.approx(other["value"] - base["value"])
        assert other["delta_low"] <= other["delta_high"]
        assert 0 < other["p_value"] <= other["p_adjusted"] <= 1 and other["mde"] >= 0
    assert "95% CI" in res.stderr and "baseline baseline" in res.stderr
    assert "patient case (case_id), 4 cases" in res.stderr and "t test" in res.stderr
    assert "not compared (describes the ground truth" in res.stderr  # gt_entropy, listed

    compare_run = client.get_run(out["compare_run_id"])
    assert compare_run.info.status == "FINISHED"
    assert compare_run.info.experiment_id == a.info.experiment_id
    assert compare_run.data.tags["nova.kind"] == "compare"
    assert compare_run.data.tags["nova.baseline_run"] == a.info.run_id
    assert compare_run.data.params["n_clusters"] == "4"
    arts = _artifacts(client, compare_run.info.run_id)
    for f in ("compare/comparison.csv", "compare/comparison.html", "compare/comparison.json",
              "compare/forest.png", "compare/plots/diagnosis_top1.png",
              "compare/plots/diagnosis_entropy.png"):
        assert f in arts
    csv = pd.read_csv(client.download_artifacts(compare_run.info.run_id, "compare/comparison.csv",
                                                str(tmp_path)))
    assert len(csv) == 2 * len(out["metrics"]) and set(csv["run_id"]) == {a.info.run_id,
                                                                          b.info.run_id}
    row = csv[(csv["metric"] == "diagnosis/top1") & (csv["run_id"] == b.info.run_id)].iloc[0]
    assert row["p_adjusted"] == pytest.approx(
        out["metrics"]["diagnosis/top1"]["runs"][b.info.run_id]["p_adjusted"])
    html = Path(client.download_artifacts(compare_run.info.run_id, "compare/comparison.html",
                                          str(tmp_path))).read_text()
    assert "diagnosis/top1" in html and "95% CI" in html and "data:image/png" in html


def test_every_logged_metric_is_recomputed_from_the_tables_or_listed(tmp_path, demo_dir):
    """Every metric a run logs is compared (and at unit weights equals the logged value, from
    the logged JSON tables: nothing the statistics read is rounded) or listed with a reason."""
    res = CliRunner().invoke(main, ["run", "--limit", "10", "--no-progress", "--experiment", "all"])
    assert res.exit_code == 0, res.stderr
    res = compare("--experiment", "all", "--json", "--no-log")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out["metrics"]) == set(SPECS)  # all 36 Table 1-3 metrics
    (run_id,) = out["metrics"]["diagnosis/top1"]["runs"]
    logged = run_store(tmp_path).get_run(run_id).data.metrics
    assert set(logged) <= set(out["metrics"]) | set(out["skipped"])
    assert set(out["skipped"]) <= set(SKIPPED)
    for key, m in out["metrics"].items():
        r = m["runs"][run_id]
        assert r["logged"] == logged[key], key
        # tables are logged as mlflow.log_table writes them: 10 decimals for fractions
        assert r["value"] == pytest.approx(logged[key], rel=1e-9, abs=1e-9), key


def test_known_difference_experiment_selection_and_baseline(tmp_path, demo_dir):
    weak = evaluated_run(tmp_path, demo_dir, 19, "weak", experiment="cmp")
    strong = evaluated_run(tmp_path, demo_dir, 43, "strong", experiment="cmp")
    res = compare("--experiment", "cmp", "--json", "--no-log")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["run_id"] for r in out["runs"]] == [weak, strong]  # oldest first = baseline
    top1 = out["metrics"]["diagnosis/top1"]["runs"][strong]
    assert top1["delta"] == pytest.approx(24 / 48) and top1["delta_low"] > 0
    assert top1["p_adjusted"] < 0.01
    assert out["compare_run_id"] is None
    assert len(_runs(tmp_path, "cmp")[1]) == 2  # --no-log: nothing logged

    mde05 = top1["mde"]
    res = compare("--experiment", "cmp", "--baseline", strong, "--metric", "diagnosis/top1",
                  "--adjust", "none", "--alpha", "0.01", "--json")
    out = json.loads(res.stdout)
    assert list(out["metrics"]) == ["diagnosis/top1"] and out["adjust"] == "none"
    r = out["metrics"]["diagnosis/top1"]["runs"][weak]
    assert r["delta"] == pytest.approx(-24 / 48) and r["p_adjusted"] == r["p_value"]
    assert r["mde"] > mde05 and out["alpha"] == 0.01  # the same paired SE, a smaller alpha
    # the comparison run just logged is not itself compared next time
    res = compare("--experiment", "cmp", "--json", "--no-log")
    assert res.exit_code == 0, res.stderr
    assert len(json.loads(res.stdout)["runs"]) == 2 and len(_runs(tmp_path, "cmp")[1]) == 3


def test_runs_over_different_cases_pair_the_shared_ones_and_say_how_many_were_left_out(
        tmp_path, demo_dir):
    for limit in ("6", "12"):
        res = CliRunner().invoke(main, ["run", "--limit", limit, "--no-progress", "--tasks",
                                        "diagnosis", "--experiment", "lim"])
        assert res.exit_code == 0, res.stderr
    _, (a, b) = _runs(tmp_path, "lim")
    assert a.data.params["dataset_digest"] != b.data.params["dataset_digest"]  # subsets
    assert a.data.params["full_dataset_digest"] == b.data.params["full_dataset_digest"]
    res = compare("--run", b.info.run_id, "--run", a.info.run_id, "--json", "--no-log")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["baseline_run_id"] == b.info.run_id  # the first given
    assert out["metrics"]["diagnosis/top1"]["n_cases"] == 6
    assert out["left_out"]["diagnosis"] == {b.info.run_id: 6, a.info.run_id: 0}
    assert "left out: 6 diagnosis case(s)" in res.stderr
    twelve = out["metrics"]["diagnosis/top1"]["runs"][b.info.run_id]
    assert twelve["logged"] == pytest.approx(b.data.metrics["diagnosis/top1"])


def test_runs_that_are_not_comparable_are_refused_unless_allowed(tmp_path, demo_dir):
    run = evaluated_run(tmp_path, demo_dir, 19, "r", experiment="mm")
    client = run_store(tmp_path)
    clones = {
        "dataset digest": clone_run(client, run, "other data", {
            "dataset_digest": "0123456789abcdef", "full_dataset_digest": "0123456789abcdef"}),
        "diagnosis scorer": clone_run(client, run, "judged", {
            "judge": "gpt-4o", "judge_prompt.version": "v1", "judge_prompt.sha256": "ab" * 32}),
        "schema version": clone_run(client, run, "schema 1", {"schema_version": "1"}),
        "metric-definition version": clone_run(client, run, "old metrics", drop=(
            "metrics_version",)),  # logged before the version existed: version 1
    }
    judged = clones["diagnosis scorer"]
    clones["judge prompt"] = clone_run(client, judged, "judge v2", {"judge_prompt.version": "v2"})
    for aspect, other in clones.items():
        first = judged if aspect == "judge prompt" else run
        res = compare("--run", first, "--run", other, "--no-log")
        assert res.exit_code == 2, (aspect, res.stderr)
        line = one_error_line(res)
        wanted = "diagnosis scorer" if aspect == "judge prompt" else aspect
        assert "not comparable" in line and f"{wanted} differs" in line, line
        assert "--allow-mismatch" in line
    res = compare("--run", run, "--run", clones["dataset digest"], "--allow-mismatch", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["mismatches"]) == 1 and "0123456789abcdef" in out["mismatches"][0]
    assert "not comparable, compared anyway: dataset digest differs" in res.stderr
    tags = client.get_run(out["compare_run_id"]).data.tags
    assert "dataset digest differs" in tags["nova.mismatches"]
    assert out["metrics"]["diagnosis/top1"]["runs"][clones["dataset digest"]]["delta"] == 0


def test_bad_input_exits_2_with_one_line(tmp_path, demo_dir):
    for args, needle in [(["--run", "0123456789abcdef0123456789abcdef"], "no such run"),
                         (["--experiment", "nope"], "nope"),
                         (["--metric", "diagnosis/top9"], "unknown metric"),
                         (["--adjust", "bonferroni"], "bonferroni")]:
        res = compare(*args)
        assert res.exit_code == 2, (args, res.stderr)
        assert needle in res.stderr
        if args[0] != "--adjust":  # click's own usage error has a usage line too
            assert needle in one_error_line(res)

"""Model-registry gate: register, alias challenger, promote to champion only on a real gain
(the lower CI bound of the paired gain above --min-delta and the adjusted p below --alpha,
over whole patient cases), log the decision so it can be recomputed; refuse a champion that
is not comparable.

Runs of known quality come from `nova-mlflow evaluate` on answer files built from the demo
set's ground truth (perfect answers for the first k cases by filename, wrong ones for the
rest), so "better" and "worse" are exact and need no model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_store
from mlflow.tracking import MlflowClient

from nova_mlflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = "nova-test"


def answers_file(path: Path, demo_dir: Path, good: int, tasks=("localization", "diagnosis")) -> Path:
    """Perfect answers for the first `good` cases (by filename), wrong ones for the others."""
    from nova_mlflow.data import load_dataset

    cases = sorted(load_dataset(demo_dir).cases, key=lambda c: c.filename)
    rows = []
    for i, c in enumerate(cases):
        ok = i < good
        if "localization" in tasks:
            boxes = [b.as_list() for b in c.gold_boxes] if ok else [[0, 0, 5, 5]]
            rows.append({"filename": c.filename, "task": "localization", "text": json.dumps(boxes)})
        if "diagnosis" in tasks:
            text = f"1. {c.final_diagnosis}" if ok else "1. Normal variant"
            rows.append({"filename": c.filename, "task": "diagnosis", "text": text})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def evaluated_run(tmp_path: Path, demo_dir: Path, good: int, name: str,
                  experiment: str = "gate-tests", tasks=("diagnosis",)) -> str:
    """Run id of an evaluate run whose answers are right for `good` cases (diagnosis only
    by default: it scores in ~2 s, localization's reports take longer)."""
    f = answers_file(tmp_path / f"{name}.jsonl", demo_dir, good, tasks)
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(f),
                                    "--model", "gpt-4o", "--experiment", experiment,
                                    "--run-name", name])
    assert res.exit_code == 0, res.stderr
    client = run_store(tmp_path)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"attributes.run_name = '{name}'")
    return run.info.run_id


def clone_run(client: MlflowClient, run_id: str, name: str, params: dict | None = None,
              drop: tuple[str, ...] = ()) -> str:
    """A FINISHED copy of a run's params (some changed or dropped) and per-case tables: a run
    as another dataset, scorer or package version would have logged it. No nova.* tag is
    copied, so the params alone say what the run was."""
    import tempfile

    src = client.get_run(run_id)
    new = client.create_run(src.info.experiment_id, run_name=name)
    values = {k: v for k, v in {**src.data.params, **(params or {})}.items() if k not in drop}
    for k, v in values.items():
        client.log_param(new.info.run_id, k, v)
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, "tables", tmp)
        for f in sorted(Path(local).iterdir()):
            client.log_artifact(new.info.run_id, str(f), "tables")
    client.set_terminated(new.info.run_id, "FINISHED")
    return new.info.run_id


def gate(run_id: str, *extra: str):
    return CliRunner().invoke(main, ["gate", "--run", run_id, "--registered-model", MODEL,
                                     "--json", *extra])


def aliases(tmp_path) -> dict[str, str]:
    return {k: str(v) for k, v in run_store(tmp_path).get_registered_model(MODEL).aliases.items()}


def version_tags(tmp_path, version: str) -> dict[str, str]:
    return run_store(tmp_path).get_model_version(MODEL, version).tags


def test_no_champion_promotes_and_records_the_configuration(tmp_path, demo_dir):
    run = evaluated_run(tmp_path, demo_dir, 19, "weak")
    res = gate(run)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["decision"] == "promoted" and out["version"] == "1" and out["checks"] == []
    assert "no champion" in res.stderr
    assert aliases(tmp_path) == {"champion": "1", "challenger": "1"}
    client = run_store(tmp_path)
    mv = client.get_model_version(MODEL, "1")
    assert mv.tags["nova.run_id"] == run and mv.run_id == run
    assert mv.tags["nova.gate_decision"] == "promoted"
    assert "no champion" in mv.tags["nova.gate_reason"]
    assert client.get_run(run).data.tags["nova.gate_decision"] == "promoted"
    assert client.get_run(run).info.status == "FINISHED"  # tagged, not reopened
    gate_run = client.get_run(out["gate_run_id"])  # the decision has a run of its own
    assert gate_run.data.tags["nova.kind"] == "gate" and mv.tags["nova.gate_run_id"] == out[
        "gate_run_id"]
    assert gate_run.data.tags["nova.challenger_run"] == run
    assert [f.path for f in client.list_artifacts(out["gate_run_id"], "gate")] == ["gate/gate.json"]


def test_worse_challenger_is_rejected(tmp_path, demo_dir):
    strong = evaluated_run(tmp_path, demo_dir, 43, "strong")
    weak = evaluated_run(tmp_path, demo_dir, 19, "weak")
    assert gate(strong).exit_code == 0
    res = gate(weak)
    assert res.exit_code == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["decision"] == "rejected" and out["champion_run_id"] == strong
    (check,) = out["checks"]
    assert check["metric"] == "diagnosis/top1"  # the default for a run without localization
    assert check["delta"] == pytest.approx(-24 / 48, abs=1e-12) and not check["passed"]
    assert check["gain_low"] == check["delta_low"] < 0
    assert check["n_clusters"] == 24 and check["n_cases"] == 48  # 24 demo cases, 2 slices each
    assert aliases(tmp_path) == {"champion": "1", "challenger": "2"}
    tags = version_tags(tmp_path, "2")
    assert tags["nova.gate_decision"] == "rejected"
    assert "diagnosis/top1" in tags["nova.gate_reason"] and "min-delta" in tags["nova.gate_reason"]
    assert run_store(tmp_path).get_run(weak).data.tags["nova.gate_decision"] == "rejected"
    assert "rejected" in res.stderr


def test_tie_is_rejected(tmp_path, demo_dir):
    first = evaluated_run(tmp_path, demo_dir, 30, "first")
    again = evaluated_run(tmp_path, demo_dir, 30, "again")  # same answers, another run
    assert gate(first).exit_code == 0
    res = gate(again)
    assert res.exit_code == 1
    (check,) = json.loads(res.stdout)["checks"]
    assert check["delta"] == 0 and check["p_value"] == 1.0 and check["p_adjusted"] == 1.0
    assert aliases(tmp_path)["champion"] == "1"


@pytest.mark.parametrize("good,flags,why", [
    (21, [], "adjusted p"),  # one more case right: not a real gain
    (29, ["--min-delta", "0.3"], "min-delta"),  # a real gain, but smaller than asked
])
def test_small_or_uncertain_gain_is_rejected(tmp_path, demo_dir, good, flags, why):
    champ = evaluated_run(tmp_path, demo_dir, 19, "champ")
    chall = evaluated_run(tmp_path, demo_dir, good, "chall")
    assert gate(champ).exit_code == 0
    res = gate(chall, *flags)
    assert res.exit_code == 1, res.stderr
    (check,) = json.loads(res.stdout)["checks"]
    assert check["delta"] > 0 and why in check["why"]
    assert aliases(tmp_path)["champion"] == "1"


def test_better_challenger_is_promoted_and_decision_recomputes_from_tables(tmp_path, demo_dir):
    both = ("localization", "diagnosis")
    weak = evaluated_run(tmp_path, demo_dir, 19, "weak", tasks=both)
    strong = evaluated_run(tmp_path, demo_dir, 43, "strong", tasks=both)
    assert gate(weak).exit_code == 0
    res = gate(strong, "--metric", "localization/mAP30,diagnosis/top1", "--alpha", "0.01")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert aliases(tmp_path) == {"champion": "2", "challenger": "2"}
    tags = version_tags(tmp_path, "2")
    assert tags["nova.gate_decision"] == "promoted" and tags["nova.gate_champion_run"] == weak

    # Recompute from the two runs' logged per-case tables alone, checked against the logged
    # hashes, with the logged settings.
    import hashlib

    import pandas as pd

    from nova_mlflow.analysis import StatsConfig
    from nova_mlflow.analysis import gate as gate_rule

    client = run_store(tmp_path)
    hashes = json.loads(tags["nova.gate_tables"])
    assert hashes == out["tables"] and len(hashes) == 4  # two tasks of two runs

    def tables(run_id):
        frames = {}
        for task in ("localization", "diagnosis"):
            path = Path(client.download_artifacts(run_id, f"tables/{task}_cases.json",
                                                  str(tmp_path / run_id[:8])))
            assert hashlib.sha256(path.read_bytes()).hexdigest() == hashes[
                f"{run_id}/tables/{task}_cases.json"]
            t = json.loads(path.read_text())
            frames[task] = pd.DataFrame(t["data"], columns=t["columns"])
        return frames

    metrics = tags["nova.gate_metrics"].split(",")
    cfg = StatsConfig(resamples=int(tags["nova.gate_resamples"]), seed=int(tags["nova.gate_seed"]),
                      alpha=float(tags["nova.gate_alpha"]), adjust=tags["nova.gate_adjust"])
    decision, comp = gate_rule(tables(weak), tables(strong), metrics, cfg,
                               float(tags["nova.gate_min_delta"]), (weak, strong))
    details = {d["metric"]: d for d in json.loads(tags["nova.gate_details"])}
    assert set(details) == set(metrics) == {"localization/mAP30", "diagnosis/top1"}
    for c in decision.checks:
        s = comp.metrics[c.metric].runs[strong]
        d = details[c.metric]
        assert (d["delta"], d["delta_low"], d["p_adjusted"], d["mde"]) == (
            s.delta, s.delta_low, s.p_adjusted, s.mde)  # mde at the gate's alpha (0.01)
        assert d["passed"] == c.passed
    assert decision.promote == (tags["nova.gate_decision"] == "promoted")
    # the gate run holds the same decision and the comparison it was taken from
    gate_json = json.loads(Path(client.download_artifacts(
        out["gate_run_id"], "gate/gate.json", str(tmp_path / "gate"))).read_text())
    assert gate_json["checks"] == out["checks"] and gate_json["tables"] == hashes
    arts = {f.path for f in client.list_artifacts(out["gate_run_id"], "compare")}
    assert {"compare/comparison.json", "compare/forest.png", "compare/plots"} <= arts


def test_dry_run_decides_without_registering(tmp_path, demo_dir):
    weak = evaluated_run(tmp_path, demo_dir, 19, "weak")
    strong = evaluated_run(tmp_path, demo_dir, 43, "strong")
    client = run_store(tmp_path)
    res = gate(weak, "--dry-run")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["decision"] == "promoted" and out["dry_run"] and out["version"] is None
    assert client.search_registered_models() == []  # nothing registered
    assert gate(weak).exit_code == 0  # now for real: version 1 is the champion
    res = gate(strong, "--dry-run")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["decision"] == "promoted" and out["version"] is None and out["gate_run_id"] is None
    (check,) = out["checks"]
    assert check["delta"] == pytest.approx(24 / 48) and check["passed"]
    assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]
    assert aliases(tmp_path) == {"champion": "1", "challenger": "1"}
    assert "nova.gate_decision" not in client.get_run(strong).data.tags
    assert gate(weak, "--dry-run").exit_code == 1  # already the champion's run: rejected


def test_a_champion_that_is_not_comparable_is_refused(tmp_path, demo_dir):
    run = evaluated_run(tmp_path, demo_dir, 19, "weak")
    client = run_store(tmp_path)
    other = clone_run(client, run, "other data", {"dataset_digest": "0123456789abcdef",
                                                  "full_dataset_digest": "0123456789abcdef"})
    assert gate(other).exit_code == 0  # the champion: scored on other data
    better = evaluated_run(tmp_path, demo_dir, 43, "strong")
    res = gate(better)
    assert res.exit_code == 2, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow:")]
    assert "not comparable" in line and "dataset digest differs" in line
    assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]
    res = gate(better, "--allow-mismatch")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["mismatches"] and "dataset digest" in out["mismatches"][0]
    assert "dataset digest" in client.get_run(out["gate_run_id"]).data.tags["nova.mismatches"]


def test_registered_model_answers_a_case_offline(tmp_path, demo_dir):
    """The champion loads from the registry and answers as the run did (baseline, offline)."""
    import mlflow
    import pandas as pd

    from nova_mlflow.data import load_dataset

    res = CliRunner().invoke(main, ["run", "--limit", "2", "--no-progress", "--experiment", "b",
                                    "--tasks", "localization,diagnosis", "--prompt", "diagnosis=v2"])
    assert res.exit_code == 0, res.stderr
    client = run_store(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("b").experiment_id])
    assert gate(run.info.run_id).exit_code == 0

    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    cfg = model.model_config
    assert cfg["model"] == "baseline" and cfg["prompts"]["diagnosis"]["version"] == "v2"
    assert cfg["prompts"]["diagnosis"]["sha256"] == run.data.params["prompt.diagnosis.sha256"]
    case = min(load_dataset("demo").cases, key=lambda c: c.filename)
    out = model.predict(pd.DataFrame([
        {"task": t, "filename": case.filename, "case_id": case.case_id,
         "clinical_history": case.clinical_history, "caption": case.caption,
         "image_path": str(case.image_path)} for t in ("localization", "diagnosis")]))
    assert list(out["task"]) == ["localization", "diagnosis"] and out["error"].isna().all()
    answers = Path(client.download_artifacts(run.info.run_id, "answers/answers.jsonl", str(tmp_path)))
    logged = {(a["filename"], a["task"]): a["text"] for a in map(json.loads, answers.read_text().splitlines())}
    for row in out.to_dict("records"):
        assert row["text"] == logged[(case.filename, row["task"])]  # same answer as in the run
    assert json.loads(out["prediction"][1])["diagnoses"]  # parsed into a ranked list
    assert len(json.loads(out["prediction"][0])["boxes"]) >= 1
    registry = mlflow.genai.load_prompt(run.data.params["prompt.diagnosis.uri"], link_to_model=False)
    assert cfg["prompts"]["diagnosis"]["text"] == registry.template  # the text the run used


def test_bad_input_exits_2(tmp_path, demo_dir):
    res = gate("0123456789abcdef0123456789abcdef")
    assert res.exit_code == 2
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow:")]  # one line
    assert "no such run" in line and "0123456789abcdef0123456789abcdef" in line
    run = evaluated_run(tmp_path, demo_dir, 10, "r")
    for metric, needle in [("localization/GT", "cannot be gated"),
                           ("diagnosis/entropy", "no better direction"),
                           ("localization/mAP30", "no localization table"),  # not scored
                           ("diagnosis/top9", "unknown metric")]:
        res = gate(run, "--metric", metric)
        assert res.exit_code == 2 and metric in res.stderr and needle in res.stderr, res.stderr
    assert run_store(tmp_path).search_registered_models() == []  # nothing registered


@pytest.mark.slow
def test_mlflow_run_gate_entry_point(tmp_path, demo_dir):
    weak = evaluated_run(tmp_path, demo_dir, 19, "weak")
    strong = evaluated_run(tmp_path, demo_dir, 43, "strong")
    env = {k: v for k, v in os.environ.items()  # evaluate ran in-process: forget its experiment
           if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"

    def project(run_id):
        return subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "gate",
                               "--env-manager", "local", "--experiment-name", "gating",
                               "-P", f"run_id={run_id}", "-P", f"registered_model={MODEL}",
                               "-P", "metric=diagnosis/top1", "-P", "min_delta=0.1"],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
                              check=False)

    first = project(strong)
    assert first.returncode == 0, first.stderr[-3000:]
    second = project(weak)  # worse: the gate exits 1, so the mlflow run fails
    assert second.returncode != 0
    assert aliases(tmp_path) == {"champion": "1", "challenger": "2"}
    assert version_tags(tmp_path, "2")["nova.gate_decision"] == "rejected"
    client = run_store(tmp_path)
    gating = client.search_runs([client.get_experiment_by_name("gating").experiment_id],
                                order_by=["attributes.start_time ASC"])
    assert [r.data.tags.get("nova.gate_decision") for r in gating] == ["promoted", "rejected"]
    assert all(r.data.tags["nova.kind"] == "gate" for r in gating)

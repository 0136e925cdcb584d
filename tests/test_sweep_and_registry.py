"""Sweeps (parent + children), prompt registry linking, run layout tags."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import run_store

from nova_mlflow.cli import main


def _runs(tmp_path):
    client = run_store(tmp_path)
    return client, [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def test_sweep_makes_parent_and_one_child_per_combination(tmp_path, demo_dir):
    res = CliRunner().invoke(main, ["sweep", "--model", "baseline", "--prompt", "diagnosis=v1",
                                    "--prompt", "diagnosis=v2", "--prompt", "localization=v2",
                                    "--limit", "4", "--no-progress", "--json",
                                    "--tasks", "localization,diagnosis"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    client, runs = _runs(tmp_path)
    parent = [r for r in runs if r.data.tags.get("nova.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == out["parent_run_id"]]
    assert len(parent) == 1 and parent[0].info.run_id == out["parent_run_id"]
    assert len(children) == 2 and len(runs) == 3
    versions = sorted(c.data.params["prompt.diagnosis.version"] for c in children)
    assert versions == ["v1", "v2"]
    assert {c.data.params["prompt.localization.version"] for c in children} == {"v2"}
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.info.run_name.startswith("baseline ")
        for tag in ("nova.dataset_digest", "nova.schema_version", "nova.package_version", "nova.tasks"):
            assert c.data.tags[tag]
    arts = [f.path for f in client.list_artifacts(out["parent_run_id"], "results")]
    assert "results/sweep_summary.csv" in arts and "results/sweep_summary.html" in arts
    # the parent's report holds the comparison of its children (the first is the baseline)
    assert "results/report.html" in arts
    html = client.download_artifacts(out["parent_run_id"], "results/report.html", str(tmp_path))
    page = Path(html).read_text(encoding="utf-8")
    assert "Comparison of the runs" in page and "localization/mAP30" in page
    assert "data:image/png" in page and "patient case (case_id)" in page  # the forest plot
    compared = {f.path for f in client.list_artifacts(out["parent_run_id"], "compare")}
    assert {"compare/comparison.json", "compare/forest.png", "compare/plots"} <= compared
    js = json.loads(Path(client.download_artifacts(
        out["parent_run_id"], "compare/comparison.json", str(tmp_path))).read_text())
    assert {r["run_id"] for r in js["runs"]} == {c.info.run_id for c in children}


def test_prompts_are_registered_once_and_linked(tmp_path, demo_dir):
    import mlflow

    args = ["run", "--limit", "2", "--no-progress", "--tasks", "diagnosis"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, args + ["--prompt", "diagnosis=v2"]).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0  # v1 again: no new registry version
    client, runs = _runs(tmp_path)
    uris = sorted(r.data.params["prompt.diagnosis.uri"] for r in runs)
    assert uris == ["prompts:/nova-diagnosis/1", "prompts:/nova-diagnosis/1", "prompts:/nova-diagnosis/2"]
    for r in runs:
        linked = json.loads(r.data.tags["mlflow.linkedPrompts"])
        assert {"name": "nova-diagnosis", "version": r.data.params["prompt.diagnosis.uri"][-1]} in linked
    v2 = mlflow.genai.load_prompt("prompts:/nova-diagnosis/2")
    assert v2.tags["nova.version"] == "v2" and "{{clinical_history}}" in v2.template


def test_sweep_bad_prompt_fails_before_any_run(tmp_path, demo_dir):
    res = CliRunner().invoke(main, ["sweep", "--model", "baseline", "--prompt", "diagnosis=v9"])
    assert res.exit_code == 2 and "v9" in res.stderr
    assert not (tmp_path / "mlflow.db").exists() or _runs(tmp_path)[1] == []

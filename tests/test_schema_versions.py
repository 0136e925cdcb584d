"""Versioned answer records: v1 runs are upgraded by explicit migrations and re-scored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.data.migrations import NewerSchema, upgrade
from nova_mlflow.schemas import SCHEMA_VERSION, Answer

from conftest import run_store

FIXTURE = Path(__file__).parent / "fixtures" / "answers_v1_gemini.jsonl"


def test_v1_record_upgrades_with_the_frame_its_run_declared():
    v1 = json.loads(FIXTURE.read_text().splitlines()[0])
    assert v1["schema_version"] == 1 and "frame" not in v1
    v2 = upgrade(v1, {"frame": "gemini_yxyx_1000"})
    assert v2["schema_version"] == SCHEMA_VERSION == 2
    assert v2["frame"] == "gemini_yxyx_1000" and v2["text"] == v1["text"]
    Answer.model_validate(v2)
    assert upgrade({"filename": "a.png", "task": "diagnosis", "text": "x"})["schema_version"] == 2
    with pytest.raises(NewerSchema):
        upgrade({**v1, "schema_version": SCHEMA_VERSION + 1})


def _log_old_run(tmp_path) -> str:
    """A run as the v1 package logged it: params, schema tag and the raw answers artifact."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("nova-demo-2025")
    with mlflow.start_run(run_name="gemini-2.0-flash loc-v1+dia-v1") as run:
        mlflow.log_params({"model": "gemini-2.0-flash", "frame": "gemini_yxyx_1000",
                           "schema_version": 1})
        mlflow.set_tag("nova.schema_version", "1")
        d = tmp_path / "v1"  # the v1 package logged the file as answers/answers.jsonl
        d.mkdir()
        (d / "answers.jsonl").write_text(FIXTURE.read_text())
        mlflow.log_artifact(str(d / "answers.jsonl"), "answers")
    return run.info.run_id


def test_evaluate_rescores_a_run_logged_under_schema_v1(tmp_path, demo_dir):
    run_id = _log_old_run(tmp_path)
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--from-run", run_id,
                                    "--json"])
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    n = m["localization/n_cases"]
    # the six answered cases are perfect once read in Gemini's frame (declared by the old run)
    assert m["localization/answered"] == 6 and m["localization/missing"] == n - 6
    assert m["localization/mAP30"] == pytest.approx(6 / n)
    assert m["localization/mAP50_95"] == pytest.approx(6 / n)
    assert m["diagnosis/top1"] == pytest.approx(6 / n)
    client = run_store(tmp_path)
    new = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
           if r.data.params.get("source_run") == run_id][0]
    assert new.data.params["frame"] == "gemini_yxyx_1000" and new.data.params["source_run"] == run_id
    assert new.data.params["model"] == "gemini-2.0-flash"
    # the re-scored answers are written in the current schema, with the frame filled in
    path = client.download_artifacts(new.info.run_id, "answers/answers.jsonl", str(tmp_path))
    rows = [json.loads(l) for l in Path(path).read_text().splitlines()]
    assert {r["schema_version"] for r in rows} == {SCHEMA_VERSION}
    assert {r.get("frame") for r in rows if r["task"] == "localization"} == {"gemini_yxyx_1000"}


def test_reading_v1_boxes_in_the_wrong_frame_would_be_visible(tmp_path, demo_dir):
    """Control: the same v1 file read as pixels scores far lower, so the frame really mattered."""
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(FIXTURE),
                                    "--frame", "pixel_xyxy", "--json"])
    m = json.loads(res.stdout)
    assert m["localization/mAP30"] < 0.5 * 6 / m["localization/n_cases"]


def test_newer_schema_is_refused_with_a_clear_line(tmp_path, demo_dir):
    f = tmp_path / "future.jsonl"
    f.write_text(json.dumps({"schema_version": 99, "filename": "case9001_001.png",
                             "task": "diagnosis", "text": "x"}) + "\n")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(f)])
    assert res.exit_code == 2
    assert "line 1" in res.stderr and "schema_version" in res.stderr and "newer" in res.stderr


def test_each_run_logs_the_json_schema_of_its_records(tmp_path, demo_dir):
    res = CliRunner().invoke(main, ["run", "--limit", "2", "--tasks", "localization", "--no-progress"])
    assert res.exit_code == 0, res.stderr
    client = run_store(tmp_path)
    run = client.search_runs([client.get_experiment_by_name("nova-demo").experiment_id])[0]
    path = client.download_artifacts(run.info.run_id, f"schemas/answer.v{SCHEMA_VERSION}.schema.json",
                                     str(tmp_path))
    schema = json.loads(Path(path).read_text())
    assert "frame" in schema["properties"] and "filename" in schema["required"]
    answers = client.download_artifacts(run.info.run_id, "answers/answers.jsonl", str(tmp_path))
    first = json.loads(Path(answers).read_text().splitlines()[0])
    assert first["schema_version"] == SCHEMA_VERSION and first["frame"] == "pixel_xyxy"

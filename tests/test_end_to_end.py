"""The whole path as a user takes it: CLI -> demo data -> baseline -> scores -> MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main

from conftest import run_store

ROOT = Path(__file__).resolve().parents[1]
LOC_KEYS = ["mAP30", "mAP50", "mAP50_95", "ACC50", "TP30", "FP30", "GT",
            "coco_mAP30", "coco_mAP50", "coco_mAP50_95",
            "precision30", "recall30", "f1_30", "precision50", "recall50", "f1_50"]
COUNT_KEYS = ["n_cases", "answered", "missing", "parse_failures", "api_errors"]


def _only_run(tmp_path):
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1, runs
    return client, runs[0]


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def test_run_logs_everything(tmp_path, demo_dir):
    res = CliRunner().invoke(main, ["run", "--limit", "12", "--json", "--no-progress"])
    assert res.exit_code == 0, res.stderr
    metrics = json.loads(res.stdout)
    for k in LOC_KEYS + COUNT_KEYS:
        assert f"localization/{k}" in metrics
    for k in ["top1", "top5"] + COUNT_KEYS:
        assert f"diagnosis/{k}" in metrics
    assert metrics["localization/n_cases"] == 12 and metrics["diagnosis/answered"] == 12

    client, run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["localization/mAP30"] == pytest.approx(metrics["localization/mAP30"])
    p = run.data.params
    assert p["model"] == "baseline" and p["data"] == "demo" and p["frame"] == "pixel_xyxy"
    assert p["prompt.diagnosis.version"] == "v1" and len(p["prompt.diagnosis.sha256"]) == 16
    assert p["package_version"] and p["dataset_digest"] == run.data.tags["nova.dataset_digest"]
    arts = _artifacts(client, run.info.run_id)
    for a in ["answers/answers.jsonl", "tables/localization_cases.json",
              "tables/captioning_cases.json", "tables/diagnosis_cases.json",
              "results/summary.md", "config/run_config.json", "results/report.html",
              "results/table1_localization.html", "results/table2_captioning.csv",
              "results/table3_diagnosis.md"]:
        assert a in arts
    report = Path(client.download_artifacts(run.info.run_id, "results/report.html",
                                            str(tmp_path))).read_text()
    assert report.count("data:image/png;base64,") >= 3  # Figures 4-6 embedded
    assert "reported by the paper" in report and "mAP30" in report
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "tables/diagnosis_cases.json",
                                                      str(tmp_path))).read_text())
    assert len(table["data"]) == 12 and "truth" in table["columns"]
    answers = Path(client.download_artifacts(run.info.run_id, "answers/answers.jsonl", str(tmp_path)))
    lines = [json.loads(l) for l in answers.read_text().splitlines()]
    assert len(lines) == 36 and {l["task"] for l in lines} == {"localization", "captioning", "diagnosis"}
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == "demo"
    # the UI's dataset version is the dataset's own digest (metadata and image bytes)
    assert run.inputs.dataset_inputs[0].dataset.digest == run.data.params["dataset_digest"]
    # per-case values live in tables, never as one metric per case
    import re

    assert not any(re.search(r"case\d{4}|\.png", k) for k in run.data.metrics)
    assert len(run.data.metrics) < 150  # a fixed set per task, not one per case


def test_crash_marks_run_failed_and_keeps_answers(tmp_path, demo_dir, monkeypatch):
    import nova_mlflow.pipeline.results as bm

    def boom(*a, **k):
        raise RuntimeError("scoring exploded")

    monkeypatch.setattr(bm, "score", boom)
    res = CliRunner().invoke(main, ["run", "--limit", "4", "--no-progress"])
    assert res.exit_code != 0
    client, run = _only_run(tmp_path)
    assert run.info.status == "FAILED"
    kept = Path(os.environ["NOVA_MLFLOW_CACHE"]) / "runs" / run.info.run_id / "answers.jsonl"
    assert len(kept.read_text().splitlines()) == 12  # answered before scoring, still on disk


def _write_outputs(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_perfect_and_empty_answer_files(tmp_path, demo_dir):
    from nova_mlflow.data import load_dataset

    cases = load_dataset(demo_dir).cases
    perfect = [{"filename": c.filename, "task": "localization",
                "text": json.dumps([b.as_list() for b in c.gold_boxes])} for c in cases]
    perfect += [{"filename": c.filename, "task": "diagnosis", "text": f"1. {c.final_diagnosis}"}
                for c in cases]
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--model", "gpt-4o",
                                    "--outputs", str(_write_outputs(tmp_path / "p.jsonl", perfect)),
                                    "--json"])
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    for k in ["mAP30", "mAP50", "mAP50_95", "ACC50", "f1_30", "f1_50", "coco_mAP30", "coco_mAP50",
              "coco_mAP50_95"]:
        assert m[f"localization/{k}"] == pytest.approx(1.0), k
    assert m["diagnosis/top1"] == 1.0 and m["diagnosis/top5"] == 1.0
    assert not any(k.startswith("captioning/") for k in m)  # only tasks in the file are scored

    empty = [{"filename": c.filename, "task": "localization", "text": "no target"} for c in cases]
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--model", "gpt-4o",
                                    "--outputs", str(_write_outputs(tmp_path / "e.jsonl", empty)),
                                    "--json"])
    m = json.loads(res.stdout)
    assert m["localization/mAP30"] == 0 and m["localization/FP30"] == 0
    assert m["localization/coco_mAP30"] == 0 and m["localization/f1_30"] == 0
    assert m["localization/answered"] == len(cases) and m["localization/parse_failures"] == 0


def test_evaluate_counts_missing_and_parse_failures(tmp_path, demo_dir):
    from nova_mlflow.data import load_dataset

    cases = load_dataset(demo_dir).cases
    rows = [{"filename": cases[0].filename, "task": "localization", "text": "I am not sure"},
            {"filename": cases[1].filename, "task": "localization", "text": "[[1,2,3,4]]"}]
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--json",
                                    "--outputs", str(_write_outputs(tmp_path / "o.jsonl", rows))])
    m = json.loads(res.stdout)
    assert m["localization/parse_failures"] == 1 and m["localization/answered"] == 1
    assert m["localization/missing"] == len(cases) - 2


@pytest.mark.parametrize("line,field", [
    ('{"filename": "nope.png", "task": "localization", "text": "x"}', "filename"),
    ('{"filename": "case9001_001.png", "task": "segmentation", "text": "x"}', "task"),
    ('{"task": "localization", "text": "x"}', "filename"),
    ('not json', None),
])
def test_evaluate_bad_outputs_file(tmp_path, demo_dir, line, field):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"filename": "case9001_001.png", "task": "diagnosis", "text": "x"}\n' + line + "\n")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(f)])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert "\n" not in err and "bad.jsonl" in err and "line 2" in err
    if field:
        assert f"field '{field}'" in err


def test_python_dash_m_json_stdout_is_one_object(tmp_path, demo_dir):
    proc = subprocess.run([sys.executable, "-m", "nova_mlflow", "run", "--limit", "3",
                           "--tasks", "localization,diagnosis", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)  # raises if anything else was printed on stdout
    assert obj["localization/n_cases"] == 3
    assert "captioning/n_cases" not in obj


@pytest.mark.slow
def test_mlflow_run_project(tmp_path, demo_dir):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager",
                           "local", "--experiment-name", "nova-project", "-P", "limit=6",
                           "-P", "prompts=diagnosis=v2"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.params["prompt.diagnosis.version"] == "v2"
    assert run.data.metrics["localization/n_cases"] == 6
    arts = _artifacts(client, run.info.run_id)
    assert "answers/answers.jsonl" in arts and "tables/localization_cases.json" in arts


@pytest.mark.slow
def test_mlflow_run_project_failure_is_marked_failed(tmp_path, demo_dir):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager",
                           "local", "-P", "data=/nonexistent/nova"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode != 0
    _, run = _only_run(tmp_path)
    assert run.info.status == "FAILED"


HEAVY = ("mlflow", "pandas", "numpy", "pydantic", "matplotlib", "nltk", "scipy", "sklearn",
         "pycocotools", "openai", "google.genai", "nilearn", "PIL", "sqlalchemy")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["evaluate", "--help"],
                                  ["--version"]])
def test_help_imports_nothing_heavy(argv):
    """`nova-mlflow --help` (and a command's) prints without importing MLflow, pandas,
    numpy, pydantic or any other heavy module (checked in a fresh interpreter)."""
    code = ("import sys, json\n"
            "from nova_mlflow.cli import main\n"
            "try:\n"
            f"    main({argv!r}, prog_name='nova-mlflow')\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage:" in out.stdout or "version" in out.stdout
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []


def test_the_command_exits_quickly_with_everything_written(tmp_path, demo_dir):
    """`python -m nova_mlflow` leaves through __main__.entry (exit handlers, then no interpreter
    teardown): the exit code, the one JSON object on stdout, the finished run, its traces
    with their assessments and its files are all there; a bad input still exits 2."""
    import mlflow

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "nova_mlflow", "run", "--limit", "3", "--tasks",
                          "diagnosis", "--json", "--no-progress"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout)
    assert metrics["diagnosis/answered"] == 3
    client, run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert "answers/answers.jsonl" in _artifacts(client, run.info.run_id)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id,
                                  return_type="list")
    assert len(traces) == 3 and all(t.info.assessments for t in traces)
    bad = subprocess.run([sys.executable, "-m", "nova_mlflow", "validate", "--data",
                          str(tmp_path / "nowhere")], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("nova-mlflow: error: ")


def test_the_command_and_only_the_command_collects_garbage_less_often(tmp_path):
    """`entry` raises the collector's thresholds for the command's process (BENCHMARKS.md,
    "garbage collector"); importing the package or calling the Python API leaves the host's
    collector as it was."""
    from nova_mlflow.__main__ import COMMAND_GC_THRESHOLDS

    code = ("import atexit, gc, json, sys\n"
            "import nova_mlflow, nova_mlflow.api, nova_mlflow.__main__ as m\n"
            "before = gc.get_threshold()\n"
            "atexit.register(lambda: print(json.dumps([before, gc.get_threshold()]),"
            " file=sys.stderr))\n"
            "sys.argv = ['nova-mlflow', '--help']\n"
            "m.entry()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before, during = json.loads(out.stderr.strip().splitlines()[-1])
    assert tuple(before) == (700, 10, 10)  # Python's own, untouched by the imports
    assert tuple(during) == tuple(COMMAND_GC_THRESHOLDS) != tuple(before)

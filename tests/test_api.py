"""The Python API as a notebook user calls it: keyword arguments named as the CLI flags,
result objects back, and calls that work inside a running event loop (Jupyter's)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

import nova_mlflow
from nova_mlflow.errors import InputError
from nova_mlflow.testing.fake_server import FakeModelServer

from conftest import run_store

KEY = "sk-test-api-3c9e1a"


def test_run_returns_the_run_and_its_metrics(tmp_path, demo_dir):
    summary = nova_mlflow.run(limit=4, tasks="localization,diagnosis", no_progress=True,
                              prompt={"diagnosis": "v2"}, run_name="from python")
    run = run_store(tmp_path).get_run(summary.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "from python"
    assert run.data.params["prompt.diagnosis.version"] == "v2"
    assert summary.metrics["localization/n_cases"] == 4
    assert run.data.metrics["diagnosis/top1"] == pytest.approx(summary.metrics["diagnosis/top1"])
    assert not any(k.startswith("captioning/") for k in summary.metrics)


def test_calls_work_inside_a_running_event_loop(tmp_path, demo_dir, monkeypatch):
    """A notebook cell runs inside an event loop: the provider calls (real openai SDK against
    the fake server) then run on a worker thread with their own loop."""
    srv = FakeModelServer(api_key=KEY).start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
    try:
        async def cell():
            assert asyncio.get_running_loop().is_running()
            return nova_mlflow.run(model="gpt-4o", limit=3, no_progress=True, no_traces=True,
                                   tasks=["localization", "diagnosis"])

        summary = asyncio.run(cell())
    finally:
        srv.stop()
    assert summary.metrics["localization/answered"] == 3
    assert summary.metrics["diagnosis/api_errors"] == 0
    assert srv.count(200) == 6


def test_evaluate_and_validate(tmp_path, demo_dir):
    from nova_mlflow.data import load_dataset

    cases = load_dataset(demo_dir).cases[:5]
    out = tmp_path / "answers.jsonl"
    out.write_text("".join(json.dumps({"filename": c.filename, "task": "diagnosis",
                                       "text": f"1. {c.final_diagnosis}"}) + "\n" for c in cases))
    summary = nova_mlflow.evaluate(data=str(demo_dir), outputs=out, model="gpt-4o")
    assert summary.metrics["diagnosis/answered"] == 5
    assert summary.metrics["diagnosis/missing"] == len(load_dataset(demo_dir)) - 5
    facts = nova_mlflow.validate(data=str(demo_dir))
    assert facts["cases"] == 48 and facts["layout"]


def test_bad_arguments_fail_as_the_cli_would():
    with pytest.raises(InputError, match="--tasks"):
        nova_mlflow.run(tasks="segmentation")
    with pytest.raises(TypeError):
        nova_mlflow.run(concurency=4)  # a misspelt keyword is an error, not ignored
    with pytest.raises(Exception, match="concurrency"):
        nova_mlflow.run(concurrency=0)


def test_importing_the_package_stays_light():
    """`import nova_mlflow` (and reaching the API's names) imports no mlflow or pandas:
    the work starts when a function is called."""
    code = ("import sys, nova_mlflow; nova_mlflow.run; "
            "print(sorted(m for m in ('mlflow', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The MLproject as a user runs it: `mlflow run .` with every parameter at its default.

The design card's command is `mlflow run . -P model=gemini-2.0-flash`; here gpt-4o (and
the sweep entry point) run against the local fake server, under `--env-manager local` and
under `--env-manager uv`, where MLflow builds the environment from conda.yaml with uv (from
the registry, the `test` extra). conda.yaml must list what pyproject.toml does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_store
from nova_mlflow.testing.fake_server import FakeModelServer

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-mlproject-5e8d2c"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_conda_yaml_lists_the_dependencies_of_pyproject():
    """The environment `mlflow run` builds (conda.yaml) holds exactly the package's
    dependencies, with the same version bounds, so the two cannot drift apart."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert {_name(d): d.replace(" ", "") for d in deps} == \
        {_name(p): str(p).replace(" ", "") for p in pip}
    python = next(d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python"))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = tuple(int(x) for x in requires.removeprefix(">=").split("."))
    assert tuple(int(x) for x in python.split("=")[1].split(".")) >= low


def _mlflow_run(tmp_path: Path, env_manager: str, *args: str, env: dict | None = None,
                timeout: int = 900) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    full["PATH"] = f"{Path(sys.executable).parent}:{full['PATH']}"
    return subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager",
                           env_manager, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env=full)


def _runs(tmp_path: Path) -> list:
    client = run_store(tmp_path)
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@pytest.fixture
def openai_server():
    srv = FakeModelServer(api_key=KEY).start()
    yield srv
    srv.stop()


def _check_main_run(tmp_path: Path, proc: subprocess.CompletedProcess, n_cases: int) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["model"] == "gpt-4o" and p["provider"] == "openai"
    assert p["tasks"] == "localization,captioning,diagnosis"
    assert {p[f"prompt.{t}.version"] for t in ("localization", "captioning", "diagnosis")} == {"v1"}
    assert p["judge"] == "none"
    for task in ("localization", "captioning", "diagnosis"):
        assert run.data.metrics[f"{task}/n_cases"] == n_cases
        assert run.data.metrics[f"{task}/api_errors"] == 0


def _check_sweep(tmp_path: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("nova.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 1
    assert children[0].data.params["model"] == "baseline"
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
def test_main_entry_point_with_only_a_model(tmp_path, demo_dir, openai_server):
    """`mlflow run . -P model=gpt-4o`: every other parameter at its default (the empty
    `prompts` default included) gives a full run on the demo set."""
    proc = _mlflow_run(tmp_path, "local", "-P", "model=gpt-4o",
                       env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": openai_server.openai_base_url})
    _check_main_run(tmp_path, proc, n_cases=48)
    assert "sk-test" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_sweep_entry_point_with_only_models(tmp_path, demo_dir):
    proc = _mlflow_run(tmp_path, "local", "-e", "sweep", "-P", "models=baseline")
    _check_sweep(tmp_path, proc)


@pytest.mark.slow
def test_entry_points_under_uv(tmp_path, tmp_path_factory, demo_dir, openai_server, monkeypatch):
    """`--env-manager uv`: MLflow builds a fresh environment from conda.yaml with uv (no conda
    needed) and runs both entry points in it with their defaults."""
    if shutil.which("uv", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("uv is part of the test extra: pip install -e '.[test]'")
    envs = tmp_path_factory.mktemp("mlflow-envs")
    env = {"MLFLOW_ENV_ROOT": str(envs), "OPENAI_API_KEY": KEY,
           "OPENAI_BASE_URL": openai_server.openai_base_url}
    proc = _mlflow_run(tmp_path, "uv", "-P", "model=gpt-4o", env=env, timeout=1800)
    _check_main_run(tmp_path, proc, n_cases=48)
    built = [p for p in envs.rglob("pyvenv.cfg")]
    assert built, "MLflow did not build a virtual environment with uv"
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{sweep_dir / 'mlflow.db'}")
    proc = _mlflow_run(sweep_dir, "uv", "-e", "sweep", "-P", "models=baseline", env=env,
                       timeout=1800)
    _check_sweep(sweep_dir, proc)

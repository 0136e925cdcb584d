"""The package as a newcomer installs it: a wheel in a fresh venv, run from another directory.

The wheel must carry everything the package reads at run time (prompt templates, the bundled
WordNet), so the demo runs end to end with HOME empty and no WordNet anywhere else; its
METEOR must equal the METEOR of nltk's own reader on Debian's WordNet 3.0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import run_store, skip_unless_required
from nova_mlflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_WORDNET = Path("/usr/share/wordnet")


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("nova_mlflow-*.whl")
    return wheel


def _hidden_wordnet(cmd: list[str]) -> list[str]:
    """`cmd` in a mount namespace where Debian's WordNet folder is an empty one (as root with
    unshare), so the run cannot read it even by accident; else `cmd` as it is."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not DEBIAN_WORDNET.is_dir():
        return cmd
    script = 'mount --bind "$1" /usr/share/wordnet && shift && exec "$@"'
    empty = Path(os.environ.get("TMPDIR", "/tmp")) / "nova-empty-wordnet"
    empty.mkdir(exist_ok=True)
    return ["unshare", "-m", "sh", "-c", script, "sh", str(empty), *cmd]


@pytest.mark.slow
def test_wheel_runs_the_demo_from_a_fresh_venv(tmp_path, monkeypatch):
    wheel = _build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nova_mlflow/prompts/templates/diagnosis/v1.md" in names
    assert "nova_mlflow/prompts/templates/judge/v1.md" in names
    assert "nova_mlflow/wordnet/wordnet-3.0.txt.gz" in names
    assert "nova_mlflow/wordnet/LICENSE-WordNet-3.0.txt" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]

    home, work = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOVA_", "MLFLOW_", "NLTK_", "XDG_", "PYTHON"))}
    env.update(HOME=str(home), NLTK_DATA=str(home / "no-nltk-data"))
    cmd = _hidden_wordnet([str(venv / "bin" / "nova-mlflow"), "run", "--json", "--no-progress"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout)
    assert metrics["localization/n_cases"] == 48 and metrics["diagnosis/answered"] == 48
    assert (work / "mlflow.db").is_file()  # the run went into ./mlflow.db of that directory
    assert (home / ".cache" / "nova_mlflow").is_dir()  # the demo and caches, by platform rules
    assert not any((home / ".cache" / "nova_mlflow").rglob("wordnet"))  # no WordNet copy made

    # the same answers scored here with nltk's own reader on Debian's WordNet 3.0
    if not (DEBIAN_WORDNET / "data.noun").is_file():
        skip_unless_required("NOVA_TEST_REQUIRE_WORDNET",
                             "Debian's WordNet 3.0 is needed for the METEOR reference: "
                             "apt-get install wordnet-base wordnet-sense-index")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    client = run_store(tmp_path)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.data.params["wordnet"] == "bundled"
    from nova_mlflow import wordnet

    monkeypatch.setenv(wordnet.ENV_VAR, str(DEBIAN_WORDNET))
    wordnet.cache_clear()
    try:
        res = CliRunner().invoke(main, ["evaluate", "--data", "demo", "--from-run",
                                        run.info.run_id, "--no-traces", "--json"])
    finally:
        monkeypatch.delenv(wordnet.ENV_VAR)
        wordnet.cache_clear()
    assert res.exit_code == 0, res.stderr[-3000:]
    reference = json.loads(res.stdout)
    assert metrics["captioning/meteor"] == pytest.approx(reference["captioning/meteor"], abs=1e-12)
    assert 0 < metrics["captioning/meteor"] < 1


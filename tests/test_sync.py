"""The tracking server goes away during a run: nothing is lost, `sync` logs it later."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nova_mlflow.testing.fake_server import FakeModelServer, FaultPlan

KEY = "sk-test-sync-11223344"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int, root: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--workers", "1", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("mlflow server did not start")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_server_gone_at_the_end_then_sync(tmp_path, demo_dir, monkeypatch):
    port = _free_port()
    root = tmp_path / "server"
    root.mkdir()
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    model = FakeModelServer(FaultPlan(latency_s=0.3), api_key=KEY).start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", model.openai_base_url)
    server = _start_server(port, root)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nova_mlflow", "run", "--data", str(demo_dir), "--model",
             "gpt-4o", "--limit", "6", "--tasks", "localization,diagnosis", "--concurrency", "1",
             "--no-progress"], cwd=tmp_path, env=dict(os.environ),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while model.count(200) < 2 and proc.poll() is None:  # the run is under way
            time.sleep(0.1)
        _stop(server)  # the tracking server goes away before the run logs its results
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 3, err[-2000:]
        assert "nova-mlflow sync" in err
        pending = list((tmp_path / "cache" / "runs").glob("*/pending.json"))
        assert len(pending) == 1
        run_id = json.loads(pending[0].read_text())["run_id"]
        answers = (pending[0].parent / "answers.jsonl").read_text().splitlines()
        assert len(answers) == 12  # every answer kept
        calls = model.count()

        server = _start_server(port, root)  # back, same store
        done = subprocess.run([sys.executable, "-m", "nova_mlflow", "sync", "--json"], cwd=tmp_path,
                              env=dict(os.environ), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip(), done.stderr[-3000:]
        assert json.loads(done.stdout) == {"synced": [run_id]}
        assert model.count() == calls  # no model call to sync
        from mlflow.tracking import MlflowClient

        run = MlflowClient(f"http://127.0.0.1:{port}").get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["localization/n_cases"] == 6
        assert run.data.metrics["run/synced"] == 1.0
        assert not pending[0].exists()
    finally:
        model.stop()
        _stop(server)

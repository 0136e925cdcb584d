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


# --- pending runs: each to its own server; the orphan check leaves them alone -------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _pending_run(client, experiment: str, demo_dir: Path, uri: str, right: bool) -> str:
    """A run as a run whose server went away leaves it: RUNNING on `uri`, opened on this host
    by a process that is gone, its answers and pending.json in the cache (pipeline.pending).
    The answers name the true diagnosis when `right`, a wrong one otherwise."""
    from nova_mlflow.config import RunConfig
    from nova_mlflow.data import load_dataset
    from nova_mlflow.paths import run_dir
    from nova_mlflow.pipeline.pending import save_pending
    from nova_mlflow.schemas import Task

    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id, tags={"nova.host": socket.gethostname(),
                                          "nova.pid": str(_dead_pid())})
    cases = load_dataset(demo_dir).limited(3).cases
    d = run_dir(run.info.run_id)
    (d / "answers.jsonl").write_text("".join(json.dumps({
        "filename": c.filename, "task": "diagnosis",
        "text": f"1. {c.final_diagnosis if right else 'Normal variant'}"}) + "\n" for c in cases))
    cfg = RunConfig(data=str(demo_dir), tasks=(Task.diagnosis,), limit=3, traces=False)
    save_pending(d, run_id=run.info.run_id, tracking_uri=uri,
                 config=cfg.model_dump(mode="json"), title="NOVA results: pending")
    return run.info.run_id


def test_orphan_check_leaves_runs_waiting_for_sync_alone(tmp_path, demo_dir):
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from nova_mlflow.cli import main

    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri)
    waiting = _pending_run(client, "orphans", demo_dir, uri, right=True)
    killed = client.create_run(client.get_experiment_by_name("orphans").experiment_id,
                               tags={"nova.host": socket.gethostname(),
                                     "nova.pid": str(_dead_pid())}).info.run_id
    res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--limit", "1", "--tasks",
                                    "diagnosis", "--experiment", "orphans", "--no-progress"])
    assert res.exit_code == 0, res.stderr
    assert client.get_run(killed).info.status == "FAILED"  # a kill -9: closed by the next run
    run = client.get_run(waiting)
    assert run.info.status == "RUNNING", run.data.tags.get("nova.failed_reason")
    assert run.data.tags["nova.pending_sync"].endswith("pending.json")
    res = CliRunner().invoke(main, ["sync", "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == {"synced": [waiting]}
    run = client.get_run(waiting)
    assert run.info.status == "FINISHED" and run.data.metrics["diagnosis/top1"] == 1.0
    assert "nova.pending_sync" not in run.data.tags  # nothing waits any more


@pytest.mark.slow
def test_sync_logs_each_run_to_the_server_recorded_with_it(tmp_path, demo_dir):
    from mlflow.tracking import MlflowClient
    from test_tracking_server import _stop as stop_server
    from test_tracking_server import start_server

    first = start_server(f"sqlite:///{tmp_path / 'a' / 'a.db'}", "sqlite", tmp_path / "a")
    try:
        second = start_server(f"sqlite:///{tmp_path / 'b' / 'b.db'}", "sqlite", tmp_path / "b")
    except BaseException:
        stop_server(first.proc)
        raise
    gone = f"http://127.0.0.1:{_free_port()}"  # a third server that is not back yet
    try:
        a, b = MlflowClient(first.url), MlflowClient(second.url)
        run_a = _pending_run(a, "team", demo_dir, first.url, right=True)
        run_b = _pending_run(b, "team", demo_dir, second.url, right=False)
        run_c = _pending_run(a, "team", demo_dir, gone, right=True)  # created on A, kept for C
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
        done = subprocess.run([sys.executable, "-m", "nova_mlflow", "sync"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 3, done.stderr[-3000:]  # C is still unreachable
        assert run_c in done.stderr and gone in done.stderr
        ra, rb = a.get_run(run_a), b.get_run(run_b)
        assert (ra.info.status, rb.info.status) == ("FINISHED", "FINISHED"), done.stderr[-3000:]
        assert ra.data.metrics["diagnosis/top1"] == 1.0 and rb.data.metrics["diagnosis/top1"] == 0
        assert a.get_run(run_c).info.status == "RUNNING"  # nothing logged to the wrong server
        pending = {p.parent.name for p in (tmp_path / "nova_cache" / "runs").glob("*/pending.json")}
        assert pending == {run_c}
    finally:
        stop_server(first.proc)
        stop_server(second.proc)

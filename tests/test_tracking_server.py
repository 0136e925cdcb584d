"""Integration tests against a REAL `mlflow server` (the team deployment of docs/deployment.md).

A module-scoped fixture starts `mlflow server` on 127.0.0.1 (free port, one worker) with
--serve-artifacts, so clients upload artifacts over HTTP into a local --artifacts-destination.
It runs once with a sqlite backend store and once with PostgreSQL when NOVA_TEST_POSTGRES_URI
is set (`.ci/run` starts a cluster and sets it); otherwise the PostgreSQL case skips with the
reason. Everything is read back through the server with MlflowClient. Each test uses its own
experiment name (a PostgreSQL store may outlive the session).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import skip_unless_required
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.testing.fake_server import FakeModelServer, FaultPlan

pytestmark = pytest.mark.slow

KEY = "sk-test-server-3c9e1a"
START_TIMEOUT_S = 60
POSTGRES_ENV = "NOVA_TEST_POSTGRES_URI"
TASKS = ("localization", "captioning", "diagnosis")
RESULT_STEMS = {"localization": "table1_localization", "captioning": "table2_captioning",
                "diagnosis": "table3_diagnosis"}


@dataclass
class MlflowServer:
    url: str
    backend: str  # "sqlite" or "postgres"
    artifacts: Path
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no server log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]


def _stop(proc: subprocess.Popen) -> None:
    """Kill the server's whole process group (uvicorn/gunicorn workers included)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(backend_uri: str, backend: str, root: Path) -> MlflowServer:
    """`mlflow server` on a free port; waits for /health; retries once on a lost port race."""
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # no GenAI job runner: it forks ~7 huey consumers (slow start, slow stop) and tracking
    # does not use it
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    last_log = ""
    for attempt in range(3):
        port = _free_port()
        log_path = root / f"server-{attempt}.log"
        cmd = [*_mlflow_cmd(), "server", "--workers", "1", "--host", "127.0.0.1",
               "--port", str(port), "--backend-store-uri", backend_uri,
               "--serve-artifacts", "--artifacts-destination", str(root / "artifacts")]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        srv = MlflowServer(f"http://127.0.0.1:{port}", backend, root / "artifacts", proc, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _health(srv.url):
                return srv
            time.sleep(0.3)
        _stop(proc)
        last_log = srv.log_tail()
        if "address already in use" not in last_log.lower():
            break
    raise RuntimeError(f"mlflow server ({backend}) did not answer /health within "
                       f"{START_TIMEOUT_S} s; log tail:\n{last_log}")


@contextlib.contextmanager
def _migration_lock(backend_uri: str):
    """One server at a time brings a shared database's schema up to date.

    Under pytest-xdist each worker starts its own server on the same PostgreSQL database;
    two alembic migrations at once collide (duplicate alembic_version). A lock file keyed by
    the URI serialises the start-up only; the servers then run side by side.
    """
    digest = hashlib.sha256(backend_uri.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"nova-mlflow-server-{digest}.lock"
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mlflow_server(request, tmp_path_factory):
    if request.param == "postgres":
        uri = os.environ.get(POSTGRES_ENV, "").strip()
        if not uri:
            skip_unless_required(
                "NOVA_TEST_REQUIRE_POSTGRES",
                f"{POSTGRES_ENV} is not set: no PostgreSQL backend store to test (apt-get "
                "install postgresql; .ci/run starts one and sets e.g. "
                "postgresql://nova:nova@127.0.0.1:5432/nova_test)")
        from sqlalchemy.engine import make_url

        try:  # the driver SQLAlchemy picks for this URI (2.1: psycopg 3 for plain postgresql://)
            make_url(uri).get_dialect().import_dbapi()
        except ImportError as exc:
            pytest.fail(f"{POSTGRES_ENV} is set but its database driver is missing ({exc}); "
                        "pip install -e '.[test]'")
        root = tmp_path_factory.mktemp("mlflow_server_pg")
    else:
        root = tmp_path_factory.mktemp("mlflow_server_sqlite")
        uri = f"sqlite:///{root / 'server.db'}"
    t0 = time.monotonic()
    with _migration_lock(uri):
        srv = start_server(uri, request.param, root)
    print(f"mlflow server ({request.param}) up in {time.monotonic() - t0:.1f} s at {srv.url}")
    try:
        yield srv
    finally:
        _stop(srv.proc)


@pytest.fixture
def on_server(mlflow_server, isolated, monkeypatch):
    """This test's client side points at the server; own response cache; own experiment."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(isolated / "cache"))
    if mlflow_server.proc.poll() is not None:
        pytest.fail(f"mlflow server died; log tail:\n{mlflow_server.log_tail()}")
    return mlflow_server


@pytest.fixture
def fake_models(monkeypatch):
    srv = FakeModelServer(FaultPlan(), api_key=KEY).start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
    try:
        yield srv
    finally:
        srv.stop()


def _client(server: MlflowServer):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.url)


def _experiment(tag: str) -> str:
    return f"nova-server-{tag}-{uuid.uuid4().hex[:8]}"


def _all_files(client, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _all_files(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def test_sweep_of_two_prompt_versions_lands_on_the_server(on_server, demo_dir, fake_models,
                                                          tmp_path):
    import mlflow

    exp_name = _experiment("sweep")
    t0 = time.monotonic()
    res = CliRunner().invoke(main, [
        "sweep", "--model", "gpt-4o", "--prompt", "diagnosis=v1", "--prompt", "diagnosis=v2",
        "--data", str(demo_dir), "--limit", "6", "--experiment", exp_name, "--no-progress",
        "--retry-base", "0.01", "--json"])
    elapsed = time.monotonic() - t0
    assert res.exit_code == 0, res.stderr[-3000:] + on_server.log_tail()
    out = json.loads(res.stdout)  # stdout is exactly one JSON object, even against a server
    assert fake_models.count(200) > 0  # the answers really came through the provider route

    client = _client(on_server)
    mlflow.set_tracking_uri(on_server.url)  # for search_traces / load_prompt below
    exp = client.get_experiment_by_name(exp_name)
    assert exp is not None
    # --serve-artifacts: runs store mlflow-artifacts:/ URIs, the bytes live in the server's root
    assert exp.artifact_location.startswith("mlflow-artifacts:/"), exp.artifact_location
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3, [r.info.run_name for r in runs]

    (parent,) = [r for r in runs if r.data.tags.get("nova.sweep") == "parent"]
    assert parent.info.run_id == out["parent_run_id"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["nova.sweep"] == "parent"
    assert parent.data.metrics["sweep/children"] == 2 and parent.data.metrics["sweep/failed"] == 0
    assert parent.data.params["prompt_grid.diagnosis"] == "v1,v2"
    assert "results/sweep_summary.csv" in _all_files(client, parent.info.run_id, "results")

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and set(out["children"]) == {c.info.run_id for c in children}
    children.sort(key=lambda r: r.data.params["prompt.diagnosis.version"])
    assert [c.data.params["prompt.diagnosis.version"] for c in children] == ["v1", "v2"]
    requests = sum(c.data.metrics["run/requests"] for c in children)
    hits = sum(c.data.metrics["run/cache_hits"] for c in children)
    assert requests == fake_models.count(200) and requests + hits == 2 * 6 * 3

    for child in children:
        rid, p, m = child.info.run_id, child.data.params, child.data.metrics
        assert child.info.status == "FINISHED", child.info
        assert child.info.run_name.startswith("gpt-4o ")
        # params: model, prompt name + version + sha256 + registry URI per task
        assert p["model"] == "gpt-4o" and p["provider"] == "openai" and p["limit"] == "6"
        for t in TASKS:
            assert re.fullmatch(r"[0-9a-f]{16,64}", p[f"prompt.{t}.sha256"]), p
            assert re.fullmatch(rf"prompts:/{p[f'prompt.{t}.name']}/\d+", p[f"prompt.{t}.uri"]), p
        # metrics: aggregates only, from the answers the fake server gave
        for t in TASKS:
            assert m[f"{t}/answered"] == 6 and m[f"{t}/api_errors"] == 0
        assert 0 <= m["localization/mAP30"] <= 1 and m["localization/mAP30"] > 0.3
        assert "captioning/bleu" in m and "diagnosis/top1" in m and "diagnosis/top5" in m
        assert not any(re.search(r"case\d", k) for k in m)  # no per-case metric
        # artifacts, listed and downloaded through the server
        files = _all_files(client, rid)
        for t in TASKS:
            assert f"tables/{t}_cases.json" in files, files
            assert any(f.startswith(f"results/{RESULT_STEMS[t]}.") for f in files), files
        assert "answers/answers.jsonl" in files
        dl = Path(client.download_artifacts(rid, "tables/diagnosis_cases.json",
                                            str(tmp_path / rid)))
        table = json.loads(dl.read_text())
        assert set(table) >= {"columns", "data"} and len(table["data"]) == 6
        answers = Path(client.download_artifacts(rid, "answers/answers.jsonl",
                                                 str(tmp_path / rid)))
        rows = [json.loads(line) for line in answers.read_text().splitlines() if line.strip()]
        assert len(rows) == 18 and {r["task"] for r in rows} == set(TASKS)
        # the bytes went over HTTP into the server's --artifacts-destination
        assert list(on_server.artifacts.rglob(f"{rid}/artifacts/answers/answers.jsonl"))
        # dataset input with its digest
        (ds_input,) = child.inputs.dataset_inputs
        assert ds_input.dataset.name == p["dataset_name"] and ds_input.dataset.digest
        assert {t.key: t.value for t in ds_input.tags}["nova_digest"] == p["dataset_digest"]
        # one trace per provider call (cache hits included), each with its assessments
        traces = mlflow.search_traces(locations=[exp.experiment_id], run_id=rid)
        assert len(traces) == 18 and all(len(a) > 0 for a in traces["assessments"])
        # prompts linked to the run, and resolvable in the server's prompt registry
        linked = json.loads(child.data.tags["mlflow.linkedPrompts"])
        for t in TASKS:
            name, version = p[f"prompt.{t}.uri"].removeprefix("prompts:/").split("/")
            assert {"name": name, "version": version} in linked, linked
            pv = mlflow.genai.load_prompt(p[f"prompt.{t}.uri"])
            assert pv.tags["nova.sha256"] == p[f"prompt.{t}.sha256"]

    v1, v2 = children
    assert v1.data.params["prompt.diagnosis.sha256"] != v2.data.params["prompt.diagnosis.sha256"]
    assert v1.data.params["prompt.diagnosis.uri"] != v2.data.params["prompt.diagnosis.uri"]
    for t in ("localization", "captioning"):  # unchanged prompts: the same registry version
        assert v1.data.params[f"prompt.{t}.uri"] == v2.data.params[f"prompt.{t}.uri"]
    print(f"sweep on {on_server.backend} server: {elapsed:.1f} s")


def test_failed_runs_are_marked_failed_on_the_server(on_server, demo_dir, fake_models):
    exp_name = _experiment("fail")
    fake_models.stop()  # the provider is gone: every call fails -> exit 3
    res = CliRunner().invoke(main, [
        "run", "--model", "gpt-4o", "--data", str(demo_dir), "--limit", "2",
        "--tasks", "diagnosis", "--max-retries", "0", "--timeout", "2",
        "--experiment", exp_name, "--no-progress"])
    assert res.exit_code == 3, res.stderr[-3000:]

    from nova_mlflow import tracking

    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run(exp_name, "crashes midway") as run:
            run.params({"step": "before the crash"})
            raise RuntimeError("boom")

    client = _client(on_server)
    exp = client.get_experiment_by_name(exp_name)
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert len(runs) == 2, list(runs)
    provider_run = next(r for name, r in runs.items() if name.startswith("gpt-4o "))
    assert provider_run.info.status == "FAILED"
    assert provider_run.data.metrics["diagnosis/api_errors"] == 2
    # what did arrive (the error rows) is still on the server for the post-mortem
    assert "answers/answers.jsonl" in _all_files(client, provider_run.info.run_id, "answers")
    crashed = runs["crashes midway"]
    assert crashed.info.status == "FAILED" and crashed.info.end_time is not None
    assert crashed.data.params["step"] == "before the crash"
    assert client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") == []


def test_json_stdout_is_one_object_against_a_server(on_server, demo_dir):
    """MLflow prints "View run ... at: URL" for http(s) stores; --json's stdout must stay one
    JSON object all the same."""
    if on_server.backend != "sqlite":
        pytest.skip("client-side behaviour, the same for every backend: checked on sqlite")
    res = CliRunner().invoke(main, [
        "run", "--data", str(demo_dir), "--limit", "1", "--tasks", "diagnosis", "--json",
        "--experiment", _experiment("json"), "--no-progress"])
    assert res.exit_code == 0, res.stderr[-3000:]
    assert isinstance(json.loads(res.stdout), dict), res.stdout[:300]


def test_server_rejects_foreign_host_header(on_server):
    """Why docs/deployment.md says --allowed-hosts: behind a proxy the Host header differs,
    and /health still answers 200 for it, so a green health check proves nothing."""
    port = on_server.url.rsplit(":", 1)[1]
    api = f"{on_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    foreign = {"Host": f"mlflow.example.org:{port}"}
    with urllib.request.urlopen(urllib.request.Request(api), timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(urllib.request.Request(f"{on_server.url}/health",
                                                       headers=foreign), timeout=5) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(api, headers=foreign), timeout=5)
    assert err.value.code == 403


def test_folder_uploads_land_as_log_artifacts_lays_them_out(on_server, tmp_path):
    """RunLogger.artifacts uploads a folder's files side by side to a remote store; the run
    holds what mlflow.log_artifacts, one file after another, leaves."""
    import mlflow

    from nova_mlflow import tracking

    if on_server.backend != "sqlite":
        pytest.skip("artifact uploads go to the same artifact store for every backend")
    folder = tmp_path / "results"
    for i, rel in enumerate(["summary.md", "figures/fig4a.png", "figures/deep/x.csv",
                             "report.html", "empty.txt", *[f"t{j}.md" for j in range(12)]]):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"" if rel == "empty.txt" else f"{rel} {i}\n".encode() * 50)
    exp = _experiment("uploads")
    with tracking.start_run(exp, "ours") as ours:
        ours.artifacts(folder, "results")
        ours.artifacts(folder)
    with tracking.start_run(exp, "mlflow's") as ref:
        mlflow.log_artifacts(str(folder), "results")
        mlflow.log_artifacts(str(folder))
    client = _client(on_server)
    mine, theirs = _all_files(client, ours.run_id), _all_files(client, ref.run_id)
    assert sorted(mine) == sorted(theirs) and len(mine) == 2 * 17
    for path in ("results/figures/deep/x.csv", "t11.md", "results/empty.txt"):
        a = client.download_artifacts(ours.run_id, path, str(tmp_path / "a"))
        b = client.download_artifacts(ref.run_id, path, str(tmp_path / "b"))
        assert Path(a).read_bytes() == Path(b).read_bytes()

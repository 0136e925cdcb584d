"""Per-call MLflow traces with NOVA expectations and feedback; NOVA metrics as GenAI scorers."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_store

from nova_mlflow.cli import main
from nova_mlflow.schemas import Task
from nova_mlflow.testing.fake_server import FakeModelServer, FaultPlan

KEY = "sk-test-NOVA-7f3a9c1e5b"  # a fake key no trace may contain
LIMIT = 8
EXPECTATION = {"localization": "gold_boxes", "captioning": "expert_caption",
               "diagnosis": "final_diagnosis"}
FEEDBACK = {"localization": {"best_iou", "hit_iou30", "hit_iou50", "ap30", "answer_status"},
            "captioning": {"clinical_keyword_f1", "modality_keyword_f1", "meteor",
                           "normal_abnormal_correct", "answer_status"},
            "diagnosis": {"top1", "top5", "diagnosis_rank", "answer_status"}}


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(d))
    return d


@pytest.fixture
def server(monkeypatch):
    srv = FakeModelServer(FaultPlan(rate_429=0.25, rate_500=0.05, seed=7), api_key=KEY).start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
    yield srv
    srv.stop()


def _run(*args: str) -> dict:
    res = CliRunner().invoke(main, ["run", "--no-progress", "--retry-base", "0.01", "--json",
                                    "--model", "gpt-4o", "--limit", str(LIMIT), *args])
    assert res.exit_code == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def _runs(tmp_path):
    client = run_store(tmp_path)
    return sorted((r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])),
                  key=lambda r: r.info.start_time)


def _traces(run) -> list:
    import mlflow

    return mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id,
                                return_type="list")


def test_one_trace_per_case_and_task_with_expectations_and_feedback(
        tmp_path, demo_dir, own_cache, server):
    _run("--data", str(demo_dir))
    (run,) = _runs(tmp_path)
    traces = _traces(run)
    assert len(traces) == 3 * LIMIT
    keys = Counter((t.info.tags["nova.filename"], t.info.tags["nova.task"]) for t in traces)
    assert len(keys) == 3 * LIMIT and set(keys.values()) == {1}
    for t in traces:
        task = t.info.tags["nova.task"]
        assert t.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
        expectations = {a.name for a in t.info.assessments if a.expectation is not None}
        feedback = {a.name for a in t.info.assessments if a.feedback is not None}
        assert expectations == {EXPECTATION[task]}, (task, expectations)
        assert feedback == FEEDBACK[task], (task, feedback)
        assert all(a.source.source_type == "CODE" and a.source.source_id == "nova_mlflow"
                   for a in t.info.assessments)
        span = t.data.spans[0]
        assert span.inputs["task"] == task and span.inputs["prompt"]["name"].startswith("nova-")
        assert span.inputs["prompt"]["version"] == "v1" and span.inputs["text"]
        assert span.outputs["status"] == "answered" and span.outputs["text"]
        assert "parsed" in span.outputs
        assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] > 0
        if task != "diagnosis":  # image as a hash + size + path reference, never the bytes
            img = span.inputs["image"]
            assert len(img["sha256"]) == 64 and img["width"] == 480
            assert Path(img["path"]).name == t.info.tags["nova.filename"]
            assert len(json.dumps(t.to_dict())) < 20_000  # a base64 PNG would be ~100 kB+
    # the scores on the traces are the run's per-case scores
    diag = [t for t in traces if t.info.tags["nova.task"] == "diagnosis"]
    top1 = [a.value for t in diag for a in t.info.assessments if a.name == "top1"]
    assert sum(top1) / LIMIT == pytest.approx(run.data.metrics["diagnosis/top1"])
    assert all(a.rationale for t in diag for a in t.info.assessments if a.name == "top5")
    # every failed attempt is a span event with its status code; answers keep their trace id
    events = [e for t in traces for e in t.data.spans[0].events if e.name == "attempt_failed"]
    codes = Counter(e.attributes["status_code"] for e in events)
    assert codes[429] + codes[500] == server.count(429) + server.count(500) > 0
    answers = own_cache / "runs" / run.info.run_id / "answers.jsonl"
    ids = {json.loads(line)["trace_id"] for line in answers.read_text().splitlines()}
    assert ids == {t.info.trace_id for t in traces}


def test_no_key_in_any_trace(tmp_path, demo_dir, own_cache, server):
    """The whole exported trace JSON, also of a call whose error text echoes the key."""
    import mlflow

    from nova_mlflow.data import load_dataset
    from nova_mlflow.providers.base import Request
    from nova_mlflow.schemas import Answer
    from nova_mlflow.tracking_traces import Tracer, flush

    _run("--data", str(demo_dir), "--tasks", "diagnosis")
    (run,) = _runs(tmp_path)
    case = load_dataset(str(demo_dir)).cases[0]
    with mlflow.start_run(run_id=run.info.run_id):
        tracer = Tracer(run.info.run_id, run.info.experiment_id, "gpt-4o")
        req = Request(task=Task.diagnosis, filename=case.filename, case_id=case.case_id,
                      prompt="hello", prompt_version="v1")
        with tracer.span(case, Task.diagnosis, req) as span:
            span.attempt_failed(1, 401, f"AuthenticationError: Incorrect API key provided: {KEY}",
                                False, None)
            span.finish(Answer(filename=case.filename, task=Task.diagnosis, status="api_error",
                               error=f"bad key {KEY} (Bearer {KEY})"))
    flush()
    traces = _traces(run)
    assert len(traces) == LIMIT + 1
    dumped = json.dumps([t.to_dict() for t in traces])
    assert KEY not in dumped and KEY[:12] not in dumped
    assert "[redacted]" in dumped  # the echoing error was there, scrubbed


def test_no_traces_flag_makes_none(tmp_path, demo_dir, own_cache, server):
    _run("--data", str(demo_dir), "--no-traces", "--tasks", "localization,diagnosis")
    (run,) = _runs(tmp_path)
    assert _traces(run) == []
    answers = own_cache / "runs" / run.info.run_id / "answers.jsonl"
    assert all("trace_id" not in json.loads(line) for line in answers.read_text().splitlines())


def test_cache_hits_get_their_own_traces(tmp_path, demo_dir, own_cache, server):
    m1 = _run("--data", str(demo_dir), "--tasks", "captioning")
    m2 = _run("--data", str(demo_dir), "--tasks", "captioning")
    assert m2["run/cache_hits"] == LIMIT and m2["run/requests"] == 0
    first, second = _runs(tmp_path)
    t1, t2 = _traces(first), _traces(second)
    assert len(t1) == len(t2) == LIMIT
    assert not {t.info.trace_id for t in t1} & {t.info.trace_id for t in t2}
    assert {t.info.tags["nova.cached"] for t in t1} == {"false"}
    assert {t.info.tags["nova.cached"] for t in t2} == {"true"}
    for t in t2:
        assert not t.data.spans[0].events  # no attempt was made
        assert any(a.name == "meteor" for a in t.info.assessments)
        assert any(a.name == "expert_caption" for a in t.info.assessments)
    assert m1["captioning/meteor"] == m2["captioning/meteor"]


def test_bulk_insert_reads_back_like_the_public_api(tmp_path):
    import mlflow

    from nova_mlflow import tracking_traces as tt

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("bulk")
    ids = []
    for _ in range(3):
        span = mlflow.start_span_no_context("x", experiment_id=exp.experiment_id)
        span.end()
        ids.append(span.trace_id)
    expectations = {"final_diagnosis": "Glioblastoma"}
    feedback = {"top1": (True, "#1 'GBM': abbreviation"), "diagnosis_rank": (1, None)}
    tt.log_case_assessments(ids[0], expectations, feedback)
    n = tt.log_assessments([tt.CaseAssessments(ids[1], expectations, feedback)])
    assert n == 3

    def seen(tid):
        t = mlflow.get_trace(tid)
        return sorted((a.name, a.value, a.rationale, a.source.source_type, a.source.source_id)
                      for a in t.info.assessments)

    assert seen(ids[0]) == seen(ids[1]) and len(seen(ids[0])) == 3
    # the public-API fallback (a tracking server) gives the same
    orig = tt._bulk_sql
    tt._bulk_sql = lambda entities: False
    try:
        tt.log_assessments([tt.CaseAssessments(ids[2], expectations, feedback)])
    finally:
        tt._bulk_sql = orig
    assert seen(ids[2]) == seen(ids[0])


def test_feedback_rules():
    from nova_mlflow.schemas import Box
    from nova_mlflow.tracking_scorers import feedback_for, localization_row

    gold = [Box(x1=100, y1=100, x2=199, y2=199)]
    row = localization_row("[[100, 100, 199, 160]]", gold)  # IoU 0.61
    fb = feedback_for(Task.localization, row)
    assert fb["best_iou"][0] == pytest.approx(0.61, abs=0.01)
    assert fb["hit_iou30"][0] is True and fb["hit_iou50"][0] is True
    row = localization_row("[[100, 100, 199, 120]]", gold)  # IoU 0.21
    fb = feedback_for(Task.localization, row)
    assert fb["hit_iou30"][0] is False and fb["ap30"][0] == 0.0
    assert "gold [[100.0, 100.0, 199.0, 199.0]]" in fb["best_iou"][1]
    fb = feedback_for(Task.localization, localization_row("no target", gold))
    assert fb["best_iou"][0] == 0.0 and fb["hit_iou30"][0] is False


def _canned(case, task: Task, good: bool) -> str:
    if task is Task.localization:
        boxes = [b.as_list() for b in case.gold_boxes] if good else [[0, 0, 5, 5]]
        return json.dumps(boxes)
    if task is Task.captioning:
        return case.caption if good else "Nothing to report."
    return (f"1. {case.final_diagnosis}\n2. Glioma" if good
            else "1. Completely unrelated finding\n2. Another unrelated finding")


def test_scorers_in_genai_evaluate_on_the_demo_set(tmp_path, demo_dir, monkeypatch):
    """A team's own predict_fn scored with NOVA's metrics by mlflow.genai.evaluate."""
    import mlflow

    from nova_mlflow.data import load_dataset
    from nova_mlflow.tracking_scorers import NOVA_SCORERS, expectations_for

    monkeypatch.setenv("MLFLOW_GENAI_EVAL_MAX_WORKERS", "1")  # sqlite: one writer at a time
    monkeypatch.setenv("MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS", "1")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("genai-eval")
    cases = {c.filename: c for c in load_dataset(str(demo_dir)).cases[:12]}
    good = {f: i % 2 == 0 for i, f in enumerate(cases)}  # half right, half wrong

    def predict_fn(filename: str, task: str) -> str:
        return _canned(cases[filename], Task(task), good[filename])

    data = [{"inputs": {"filename": f, "task": t.value}, "expectations": expectations_for(c, t)}
            for f, c in cases.items() for t in Task]
    result = mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=NOVA_SCORERS)
    m = result.metrics
    assert m["top1/mean"] == pytest.approx(0.5)
    assert m["hit_iou50/mean"] == pytest.approx(0.5)
    assert m["best_iou/mean"] == pytest.approx(0.5, abs=0.01)
    assert 0.45 < m["meteor/mean"] < 0.55
    df = result.result_df
    assert len(df) == 3 * len(cases)
    rows = df.dropna(subset=["top1/value"])
    assert len(rows) == len(cases)
    assert all(isinstance(r, str) and r for r in rows["top5/rationale"])
    # the assessments are on the evaluation run's traces
    trace = mlflow.get_trace(df["trace_id"].iloc[0])
    assert any(a.feedback is not None for a in trace.info.assessments)


# --- the review flow in a real browser (optional: needs chromium + the playwright package) ----

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _start_ui(store_uri: str, root: Path):
    """`mlflow ui` (its server, one worker, no GenAI job runner) on a free port; waits for it."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    exe = Path(sys.executable).with_name("mlflow")
    log = open(root / "ui.log", "wb")  # noqa: SIM115 - the server's log, closed by stop()
    proc = subprocess.Popen([str(exe), "server", "--workers", "1", "--host", "127.0.0.1",
                             "--port", str(port), "--backend-store-uri", store_uri],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)

    def stop() -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.close()

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return url, stop
        except OSError:
            time.sleep(0.5)
    stop()
    raise RuntimeError(f"mlflow ui did not start: {(root / 'ui.log').read_text()[-2000:]}")


@pytest.mark.slow
def test_evaluation_runs_view_lists_the_assessments(tmp_path, demo_dir, own_cache, server):
    """Two prompt versions, compared case by case in the UI's Evaluation runs view."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    import tempfile

    for v in ("v1", "v2"):
        _run("--data", str(demo_dir), "--tasks", "diagnosis", "--prompt", f"diagnosis={v}",
             "--run-name", f"dx-{v}", "--experiment", "ui-review")
    exp_id = _runs(tmp_path)[0].info.experiment_id
    url, stop = _start_ui(os.environ["MLFLOW_TRACKING_URI"], tmp_path)
    try:
        with sync_api.sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(dir=tmp_path), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1800, "height": 1100})
            try:
                page = ctx.new_page()
                page.goto(f"{url}/#/experiments/{exp_id}/evaluation-runs")
                page.wait_for_selector("text=dx-v1", timeout=120_000)
                assert "dx-v2" in page.inner_text("body")
                page.click("text=dx-v2")  # the run's cases, one row per trace
                page.wait_for_selector("text=answer_status", timeout=120_000)
                page.screenshot(path=str(tmp_path / "evaluation-runs.png"))
                body = page.inner_text("body")
            finally:
                ctx.close()
    finally:
        stop()
    assert "Expectations" in body and "final_diagnosis" in body
    assert "Assessments" in body and "top1" in body and "%" in body  # pass rates
    assert '"version": "v2"' in body  # the rows are the v2 run's calls
    assert body.count("tr-") >= LIMIT

"""Per-call MLflow traces with NOVA expectations and feedback; NOVA metrics as GenAI scorers."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_store, skip_unless_required

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


def _traces(run, role: str | None = None) -> list:
    """The run's traces; `role` "model" or "judge" keeps only those calls (tag nova.role)."""
    import mlflow

    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id,
                                  return_type="list")
    return [t for t in traces if role is None or t.info.tags.get("nova.role") == role]


def test_one_trace_per_case_and_task_with_expectations_and_feedback(
        tmp_path, demo_dir, own_cache, server):
    _run("--data", str(demo_dir))
    (run,) = _runs(tmp_path)
    traces = _traces(run)
    assert {t.info.tags["nova.role"] for t in traces} == {"model"}  # no judge in this run
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
        # the preview (the UI's Request column, by which "compare to" pairs runs) is the case
        assert json.loads(t.info.request_preview) == {
            "filename": t.info.tags["nova.filename"], "case_id": t.info.tags["nova.case_id"],
            "task": task}
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
    from nova_mlflow.tracking.assessments import flush
    from nova_mlflow.tracking.traces import Tracer

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


def test_judge_calls_are_traced_apart_from_the_model_calls(tmp_path, demo_dir, own_cache, server,
                                                           monkeypatch):
    """--judge: one trace per judge call, linked to the run, with the verdict; none with
    --no-traces; the model's traces stay one per case; no key anywhere."""
    from nova_mlflow.judge import read_verdict
    from nova_mlflow.testing.fake_server import fake_judge

    args = ("--data", str(demo_dir), "--tasks", "diagnosis", "--judge", "gpt-4o")
    # --no-traces first, on a cache of its own (so its judge calls are really made)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "cache-untraced"))
    m0 = _run(*args, "--no-traces", "--experiment", "untraced")
    assert m0["diagnosis/judge_calls"] > 0
    faults_before = server.count(429) + server.count(500)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(own_cache))
    m = _run(*args, "--experiment", "traced")
    untraced, run = _runs(tmp_path)
    assert _traces(untraced) == []

    model, judge = _traces(run, "model"), _traces(run, "judge")
    assert len(model) + len(judge) == len(_traces(run))
    # the model's traces: still one per case and task
    assert len(model) == LIMIT
    assert len({t.info.tags["nova.filename"] for t in model}) == LIMIT
    assert {t.info.tags["nova.task"] for t in model} == {"diagnosis"}
    # the judge's: one per call (a verdict cache hit or a normalisation shortcut makes none)
    calls = m["diagnosis/judge_calls"] + m["diagnosis/judge_api_errors"]
    assert calls > 0 and len(judge) == calls
    model_ids = {t.info.trace_id for t in model}
    reasons = set()
    for t in judge:
        assert t.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
        assert t.info.tags["nova.task"] == "diagnosis-judge"
        assert t.info.tags["nova.judge_model"] == "gpt-4o"
        (span,) = t.data.spans
        assert span.name == "nova.diagnosis-judge" and span.attributes["nova.role"] == "judge"
        inp, out = span.inputs, span.outputs
        assert inp["task"] == "diagnosis-judge" and inp["model"] == "gpt-4o"
        assert inp["prompt"] == {"name": "nova-judge", "version": "v1"}
        assert f"Predicted diagnosis: {inp['prediction']}" in inp["text"]
        assert f"Ground-truth diagnosis: {inp['truth']}" in inp["text"]
        assert inp["cases"] and inp["case_id"] == inp["cases"][0]["case_id"]
        assert {c["trace_id"] for c in inp["cases"]} <= model_ids  # the answers it judged
        assert t.info.tags["nova.filename"] == inp["cases"][0]["filename"]
        assert json.loads(t.info.request_preview) == {
            "task": "diagnosis-judge", "prediction": inp["prediction"], "truth": inp["truth"]}
        # outputs: the raw answer and the verdict parsed from it
        assert out["status"] == "answered" and out["text"] == fake_judge(inp["text"])
        match, reason = read_verdict(out["text"])
        assert out["verdict"] == {"match": match, "reason": reason}
        assert span.attributes["nova.verdict"] is match
        assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] > 0
        assert span.attributes["nova.latency_s"] > 0 and span.attributes["nova.attempts"] >= 1
        assert not t.info.assessments  # the scores are on the model's traces
        reasons.add(reason)
    assert reasons <= {"word sets nest", "different words"}
    # ... and those verdicts are the ones scoring used (the rationale of top5)
    rationales = " ".join(a.rationale or "" for t in model for a in t.info.assessments
                          if a.name == "top5")
    assert any(r in rationales for r in reasons)
    # every failed attempt of the run, model's or judge's, is an event on its trace
    events = [e for t in model + judge for e in t.data.spans[0].events
              if e.name == "attempt_failed"]
    codes = Counter(e.attributes["status_code"] for e in events)
    assert codes[429] + codes[500] == server.count(429) + server.count(500) - faults_before > 0
    assert any(e.name == "attempt_failed" for t in judge for e in t.data.spans[0].events)
    dumped = json.dumps([t.to_dict() for t in model + judge])
    assert KEY not in dumped and KEY[:12] not in dumped


def test_judge_traces_of_unreadable_and_failed_calls(tmp_path, demo_dir, own_cache, monkeypatch):
    """An answer with no verdict and a refused call: each still a judge trace, saying so."""
    import mlflow

    from nova_mlflow.data import load_dataset
    from nova_mlflow.judge import JudgeMatcher
    from nova_mlflow.config import RetryPolicy
    from nova_mlflow.testing.fake_server import default_script
    from nova_mlflow.tracking.assessments import flush
    from nova_mlflow.tracking.traces import Tracer

    def script(route, model, prompt, image):
        return "I am not sure." if "Predicted diagnosis: Mystery" in prompt else \
            default_script(route, model, prompt, image)

    wrong = "sk-wrong-5e6f7a8b9c0d"
    srv = FakeModelServer(api_key=KEY, script=script).start()
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
    c1, c2 = load_dataset(str(demo_dir)).cases[:2]
    policy = RetryPolicy(max_retries=0, base_delay=0.01)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("judge-faults")
    try:
        with mlflow.start_run() as active:
            tracer = Tracer(active.info.run_id, active.info.experiment_id, "gpt-4o")
            monkeypatch.setenv("OPENAI_API_KEY", KEY)
            judge = JudgeMatcher("gpt-4o", policy=policy, use_cache=False)
            judge.tracer = tracer
            unreadable, answered = judge.match_many(
                [("Mystery", c1.final_diagnosis), ("Glioma", c2.final_diagnosis)], cases=[c1, c2])
            monkeypatch.setenv("OPENAI_API_KEY", wrong)
            refused = JudgeMatcher("gpt-4o", policy=policy, use_cache=False)
            refused.tracer = tracer
            (failed,) = refused.match_many([("Glioma", c1.final_diagnosis)], cases=[c1])
    finally:
        srv.stop()
    flush()
    assert "unreadable" in unreadable.reason and "judge call failed" in failed.reason
    assert judge.usage.unreadable == 1 and refused.usage.api_errors == 1
    run = mlflow.get_run(active.info.run_id)
    traces = {t.data.spans[0].inputs["prediction"] + "/" + t.data.spans[0].inputs["filename"]: t
              for t in _traces(run, "judge")}
    assert len(traces) == 3 == len(tracer.judge_trace_ids)
    out = traces[f"Mystery/{c1.filename}"].data.spans[0].outputs
    assert out["status"] == "unreadable" and out["text"] == "I am not sure."
    assert out["verdict"] == {"match": False, "reason": unreadable.reason}
    assert traces[f"Glioma/{c2.filename}"].data.spans[0].outputs["status"] == "answered"
    span = traces[f"Glioma/{c1.filename}"].data.spans[0]
    assert span.status.status_code == "ERROR" and span.outputs["status"] == "api_error"
    assert span.outputs["text"] is None and span.outputs["error"]
    (event,) = span.events
    assert event.name == "attempt_failed" and event.attributes["status_code"] == 401
    dumped = json.dumps([t.to_dict() for t in traces.values()])
    assert KEY not in dumped and wrong not in dumped and wrong[:12] not in dumped


def test_a_span_that_cannot_open_costs_nothing(demo_dir, monkeypatch):
    """Tracing never costs an answer or a verdict: when MLflow cannot open the root span,
    the call and the judge call go on with no span, and nothing is left to end."""
    from nova_mlflow.tracking import traces as tracking_traces
    from nova_mlflow.data import load_dataset
    from nova_mlflow.prompts import load_prompt
    from nova_mlflow.providers.base import Request

    def refuse(*a, **k):
        raise RuntimeError("tracing backend down")

    monkeypatch.setattr(tracking_traces.mlflow, "start_span_no_context", refuse)
    case = load_dataset(str(demo_dir)).cases[0]
    tracer = tracking_traces.Tracer("run-id", "0", "gpt-4o")
    req = Request(task=Task.diagnosis, filename=case.filename, case_id=case.case_id,
                  prompt="hello", prompt_version="v1")
    with tracer.span(case, Task.diagnosis, req) as call:
        assert call is None
    prompt = load_prompt("judge")
    with tracer.judge_span(req, "gpt-4o", prompt, ("A", "B"), [case]) as judged:
        assert judged is None
    assert tracer.trace_ids == {} and tracer.judge_trace_ids == []
    assert tracer.seconds > 0


def test_no_traces_flag_makes_none(tmp_path, demo_dir, own_cache, server):
    _run("--data", str(demo_dir), "--no-traces", "--tasks", "localization,diagnosis")
    (run,) = _runs(tmp_path)
    assert _traces(run) == []
    answers = own_cache / "runs" / run.info.run_id / "answers.jsonl"
    assert all("trace_id" not in json.loads(line) for line in answers.read_text().splitlines())


def _assessments_of(trace, run) -> list:
    """The assessments a run logged on a trace (a linked trace carries several runs')."""
    return [a for a in trace.info.assessments if a.run_id == run.info.run_id]


def _answers(own_cache, run) -> list[dict]:
    path = own_cache / "runs" / run.info.run_id / "answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _experiment_traces(run) -> list:
    import mlflow

    return mlflow.search_traces(locations=[run.info.experiment_id], return_type="list")


def test_a_cached_rerun_links_the_traces_of_the_calls(tmp_path, demo_dir, own_cache, server):
    """No new trace per cached answer: the trace of the call that produced it is linked to
    the re-run, which lists it with its own expectations and scores, told apart by run."""
    m1 = _run("--data", str(demo_dir), "--tasks", "captioning")
    m2 = _run("--data", str(demo_dir), "--tasks", "captioning")
    assert m2["run/cache_hits"] == LIMIT and m2["run/requests"] == 0
    first, second = _runs(tmp_path)
    t1, t2 = _traces(first), _traces(second)
    assert len(t1) == len(t2) == LIMIT
    assert {t.info.trace_id for t in t1} == {t.info.trace_id for t in t2}
    assert len(_experiment_traces(first)) == LIMIT  # no trace was logged for a cached answer
    for t in t2:
        assert t.info.tags["nova.cached"] == "false"  # the call that paid for the answer
        assert t.info.trace_metadata["mlflow.sourceRun"] == first.info.run_id
        for run in (first, second):
            mine = _assessments_of(t, run)
            assert {a.name for a in mine if a.expectation is not None} == {"expert_caption"}
            assert {a.name for a in mine if a.feedback is not None} == FEEDBACK["captioning"]
            assert all(a.metadata["mlflow.assessment.sourceRunId"] == run.info.run_id
                       for a in mine)
        assert len(t.info.assessments) == 2 * (1 + len(FEEDBACK["captioning"]))
    assert m1["captioning/meteor"] == m2["captioning/meteor"]
    # the answer records name the trace of their call, cached or not
    a1, a2 = _answers(own_cache, first), _answers(own_cache, second)
    assert {a["trace_id"] for a in a2} == {a["trace_id"] for a in a1} == {
        t.info.trace_id for t in t1}
    assert all(a.get("cached") for a in a2) and not any(a.get("cached") for a in a1)
    # the re-run's scores are its own: its feedback on each trace is its per-case table's
    meteor = sorted(a.value for t in t2 for a in _assessments_of(t, second) if a.name == "meteor")
    assert sum(meteor) / LIMIT == pytest.approx(m2["captioning/meteor"], abs=1e-6)


def test_a_cached_answer_whose_trace_cannot_be_linked_is_traced_anew(
        tmp_path, demo_dir, own_cache, server):
    """A trace in another experiment (a run's Traces tab shows its experiment's only) or
    deleted is logged anew for the case; the cache then names the new trace, so the next
    re-run there links it."""
    import mlflow

    _run("--data", str(demo_dir), "--tasks", "diagnosis", "--experiment", "first")
    _run("--data", str(demo_dir), "--tasks", "diagnosis", "--experiment", "second")
    first, second = _runs(tmp_path)
    t1, t2 = _traces(first), _traces(second)
    assert len(t2) == LIMIT and not {t.info.trace_id for t in t1} & {t.info.trace_id for t in t2}
    for t in t2:
        assert t.info.tags["nova.cached"] == "true"
        assert t.info.trace_metadata["mlflow.sourceRun"] == second.info.run_id
        assert json.loads(t.info.request_preview)["task"] == "diagnosis"
        assert {a.name for a in _assessments_of(t, second)} >= {"final_diagnosis", "top1"}
    assert {a["trace_id"] for a in _answers(own_cache, second)} == {t.info.trace_id for t in t2}
    # the next re-run in "second" links the traces logged anew
    _run("--data", str(demo_dir), "--tasks", "diagnosis", "--experiment", "second")
    third = _runs(tmp_path)[-1]
    assert {t.info.trace_id for t in _traces(third)} == {t.info.trace_id for t in t2}
    # ... and once they are deleted, the next one traces anew again
    mlflow.MlflowClient().delete_traces(second.info.experiment_id,
                                        trace_ids=[t.info.trace_id for t in t2])
    _run("--data", str(demo_dir), "--tasks", "diagnosis", "--experiment", "second")
    fourth = _runs(tmp_path)[-1]
    t4 = _traces(fourth)
    assert len(t4) == LIMIT and not {t.info.trace_id for t in t4} & {t.info.trace_id for t in t2}
    assert all(t.info.trace_metadata["mlflow.sourceRun"] == fourth.info.run_id for t in t4)


def test_answers_cached_untraced_are_traced_then_linked(tmp_path, demo_dir, own_cache, server):
    _run("--data", str(demo_dir), "--tasks", "diagnosis", "--no-traces")
    _run("--data", str(demo_dir), "--tasks", "diagnosis")
    _run("--data", str(demo_dir), "--tasks", "diagnosis")
    untraced, traced, linked = _runs(tmp_path)
    assert _traces(untraced) == []
    t2, t3 = _traces(traced), _traces(linked)
    assert len(t2) == LIMIT and {t.info.tags["nova.cached"] for t in t2} == {"true"}
    assert {t.info.trace_id for t in t3} == {t.info.trace_id for t in t2}


def test_the_response_cache_gains_its_trace_id_column_in_place(tmp_path):
    """A cache file written before responses kept their trace: same rows, trace id None."""
    import sqlite3

    from nova_mlflow.calls.store import CacheKey, CallStore
    from nova_mlflow.providers.base import Response

    path = tmp_path / "responses.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE responses (key TEXT PRIMARY KEY, provider TEXT NOT NULL,
        model TEXT NOT NULL, text TEXT NOT NULL, refused INTEGER NOT NULL, input_tokens INTEGER,
        output_tokens INTEGER, created REAL NOT NULL);
        INSERT INTO responses VALUES ('k1', 'openai', 'gpt-4o', 'old answer', 0, 10, 2, 0);""")
    db.commit()
    db.close()
    store = CallStore(path)
    # a schema-1 row answers to the key's legacy form (the provider's default endpoint)
    k1 = CacheKey("k1-with-endpoint", "openai", "gpt-4o", None, legacy="k1")
    old = store.get(k1)
    assert old is not None and old.text == "old answer" and old.trace_id is None
    k2 = CacheKey("k2", "openai", "gpt-4o", "https://api.openai.com/v1")
    store.put(k2, Response(text="new"), trace_id="tr-abc")
    assert store.get(k2).trace_id == "tr-abc" and store.get(k2).cached
    store.set_trace_id(k1, "tr-def")  # the row found through the legacy key
    assert store.get(k1).trace_id == "tr-def" and store.get(k1).input_tokens == 10
    store.close()
    again = CallStore(path)  # opening a migrated file again changes nothing
    assert again.get(k1).trace_id == "tr-def" and len(again) == 2
    again.close()


def test_feedback_rules():
    from nova_mlflow.schemas import Box
    from nova_mlflow.scoring.feedback import feedback_for, localization_row

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
    from nova_mlflow.scoring.feedback import expectations_for
    from nova_mlflow.tracking.scorers import NOVA_SCORERS

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


# --- the review flow in a real browser (needs Debian's chromium + the playwright package) ------

CHROMIUM = "/usr/bin/chromium"
# --no-sandbox: CI runs as root in a container (Chromium refuses its sandbox as root);
# --disable-dev-shm-usage: a container's /dev/shm is often 64 MB, too small for Chromium
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
REQUIRE_BROWSER = "NOVA_TEST_REQUIRE_BROWSER"  # set by .ci/run, which installs both
LAUNCH_TIMEOUT_MS = 90_000
PAGE_TIMEOUT_MS = 120_000  # the first page load builds the UI's bundle cache on a busy machine


def _playwright_or_skip():
    """The playwright sync API; a skip only when Chromium or the package is really absent.

    With NOVA_TEST_REQUIRE_BROWSER set (CI), an absent one is a failure too. Once the package
    is there, importing it is not guarded: a broken install fails the test loudly.
    """
    import importlib.util

    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package is not installed (pip install -e '.[test]')")
    if missing:
        skip_unless_required(REQUIRE_BROWSER, "; ".join(missing))
    from playwright import sync_api

    return sync_api


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


def _ui_failure(what: str, page, root: Path, exc: BaseException) -> str:
    """A failure message with what the page showed and the server said (+ a screenshot)."""
    shot = root / "evaluation-runs-failure.png"
    try:
        page.screenshot(path=str(shot))
        body = " ".join(page.inner_text("body", timeout=5_000).split())[:1500]
    except Exception as inner:  # noqa: BLE001 - the message matters more than the extras
        body = f"(page not readable: {inner})"
    log = root / "ui.log"
    server = log.read_text(errors="replace")[-1500:] if log.exists() else "(no ui.log)"
    return (f"{what}: {type(exc).__name__}: {exc}\n--- page ({page.url}) ---\n{body}\n"
            f"--- mlflow ui log (tail) ---\n{server}\n--- screenshot: {shot}")


RELABEL = "Relabelled diagnosis"


def _relabelled(demo_dir: Path, dest: Path) -> Path:
    """The demo set with every final diagnosis replaced: same images, history and captions,
    so the model's answers come from the response cache, scored against other labels."""
    import csv
    import shutil

    from nova_mlflow.data.demo import CSV_NAME

    shutil.copytree(demo_dir, dest)
    with open(dest / CSV_NAME, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for i, row in enumerate(rows):
        row["final_diagnosis"] = f"{RELABEL} {i:02d}"
    with open(dest / CSV_NAME, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return dest


@pytest.mark.slow
def test_evaluation_runs_view_lists_the_assessments(tmp_path, demo_dir, own_cache, server):
    """Two prompt versions, compared case by case in the UI's Evaluation runs view; a cached
    re-run on relabelled ground truth lists dx-v2's (linked) traces with its own scores, and
    dx-v2 keeps showing its own."""
    sync_api = _playwright_or_skip()
    import tempfile

    for v in ("v1", "v2"):
        _run("--data", str(demo_dir), "--tasks", "diagnosis", "--prompt", f"diagnosis={v}",
             "--run-name", f"dx-{v}", "--experiment", "ui-review")
    relabelled = _relabelled(demo_dir, tmp_path / "relabelled")
    m = _run("--data", str(relabelled), "--tasks", "diagnosis", "--prompt", "diagnosis=v2",
             "--run-name", "gt-relabelled", "--experiment", "ui-review")
    assert m["run/cache_hits"] == LIMIT and m["diagnosis/top5"] == 0
    runs = {r.info.run_name: r for r in _runs(tmp_path)}
    exp_id = runs["dx-v1"].info.experiment_id
    trace_ids = {name: {t.info.trace_id for t in _traces(r)} for name, r in runs.items()}
    assert all(len(ids) == LIMIT for ids in trace_ids.values()), trace_ids
    assert trace_ids.pop("gt-relabelled") == trace_ids["dx-v2"]  # linked, not logged again
    url, stop = _start_ui(os.environ["MLFLOW_TRACKING_URI"], tmp_path)
    try:
        with sync_api.sync_playwright() as p:
            try:  # the system Chromium; playwright's own browser download is never used
                ctx = p.chromium.launch_persistent_context(
                    tempfile.mkdtemp(dir=tmp_path), executable_path=CHROMIUM, headless=True,
                    args=CHROMIUM_FLAGS, viewport={"width": 1800, "height": 1100},
                    timeout=LAUNCH_TIMEOUT_MS)
            except sync_api.Error as exc:  # an environment problem: fail, never skip
                pytest.fail(f"Chromium ({CHROMIUM} {' '.join(CHROMIUM_FLAGS)}) did not start "
                            f"under playwright: {exc}", pytrace=False)
            try:
                ctx.set_default_timeout(PAGE_TIMEOUT_MS)
                ctx.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
                page = ctx.new_page()
                step = "opening the Evaluation runs view"
                try:
                    page.goto(f"{url}/#/experiments/{exp_id}/evaluation-runs")
                    step = "waiting for the runs dx-v1 and dx-v2 to be listed"
                    page.wait_for_selector("text=dx-v1")
                    page.wait_for_selector("text=dx-v2")
                    step = "opening run dx-v2's cases (one row per trace, with assessments)"
                    page.click("text=dx-v2")
                    page.wait_for_selector("text=answer_status")
                    page.screenshot(path=str(tmp_path / "evaluation-runs.png"))
                    body = page.inner_text("body")
                    # the run's Traces tab: "<dx-v2> compare to <baseline run>", set to dx-v1
                    step = "opening dx-v2's Traces tab and its 'compare to' switch"
                    page.goto(f"{url}/#/experiments/{exp_id}/runs/"
                              f"{runs['dx-v2'].info.run_id}/evaluations")
                    page.wait_for_selector("text=compare to")
                    switch = page.locator('[data-component-id='
                                          '"mlflow.evaluations_review.table_ui.compare_to_run_button"]')
                    switch.last.click()
                    step = "choosing dx-v1 in the 'compare to' switch"
                    page.get_by_role("option").filter(has_text="dx-v1").click()
                    step = "waiting for dx-v1's traces to pair up with dx-v2's, case by case"
                    page.wait_for_selector(f"text={sorted(trace_ids['dx-v1'])[0]}")
                    page.screenshot(path=str(tmp_path / "compare-runs.png"))
                    compared = page.inner_text("body")
                    # the relabelled re-run: dx-v2's traces, with the re-run's expectations
                    step = "opening gt-relabelled's Traces tab (dx-v2's traces, linked)"
                    page.goto(f"{url}/#/experiments/{exp_id}/runs/"
                              f"{runs['gt-relabelled'].info.run_id}/evaluations")
                    page.wait_for_selector(f"text={RELABEL}")
                    page.wait_for_selector("text=answer_status")
                    page.screenshot(path=str(tmp_path / "relabelled-run.png"))
                    relabelled_body = page.inner_text("body")
                    step = "opening dx-v2's Traces tab again"
                    page.goto(f"{url}/#/experiments/{exp_id}/runs/"
                              f"{runs['dx-v2'].info.run_id}/evaluations")
                    page.wait_for_selector("text=answer_status")
                    page.screenshot(path=str(tmp_path / "dx-v2-run.png"))
                    own_body = page.inner_text("body")
                except sync_api.Error as exc:
                    pytest.fail(_ui_failure(step, page, tmp_path, exc), pytrace=False)
            finally:
                ctx.close()
    finally:
        stop()
    excerpt = " ".join(body.split())[:1500]
    assert "Expectations" in body and "final_diagnosis" in body, excerpt
    assert "Assessments" in body and "top1" in body and "%" in body, excerpt  # pass rates
    assert all(t in body for t in trace_ids["dx-v2"]), excerpt  # the rows are dx-v2's calls
    assert not any(t in body for t in trace_ids["dx-v1"]), excerpt
    # compared: every case's row holds both runs' traces (the rows pair by the request preview,
    # the case key; an unpaired trace would show a row of "null" for the other run)
    excerpt = " ".join(compared.split())[:1500]
    assert all(t in compared for tids in trace_ids.values() for t in tids), excerpt
    assert "null" not in compared, excerpt
    # a trace shared by two runs shows each run its own expectations and scores in its rows
    # (the assessments name their run; the column summaries on top are MLflow's aggregate of
    # every assessment on the run's traces, whichever run logged it: not checked here)
    excerpt = " ".join(relabelled_body.split())[:1500]
    assert all(t in relabelled_body for t in trace_ids["dx-v2"]), excerpt
    assert relabelled_body.count(RELABEL) == LIMIT, excerpt  # one per row: its own label
    excerpt = " ".join(own_body.split())[:1500]
    assert all(t in own_body for t in trace_ids["dx-v2"]), excerpt
    assert RELABEL not in own_body and RELABEL not in body, excerpt


def test_evaluate_traces_its_judge_calls(tmp_path, demo_dir, own_cache, server, monkeypatch):
    """`evaluate --judge`: no model call, but each judge call is a trace of the evaluation run
    (with the verdict, no key); --no-traces: none."""
    from nova_mlflow.data import load_dataset

    cases = load_dataset(demo_dir).cases[:LIMIT]
    outputs = tmp_path / "answers.jsonl"
    outputs.write_text("".join(json.dumps({
        "filename": c.filename, "task": "diagnosis",
        "text": "1. Glioblastoma\n2. Brain abscess\n3. Meningioma"}) + "\n" for c in cases))
    base = ["evaluate", "--data", str(demo_dir), "--outputs", str(outputs), "--model", "gpt-4o",
            "--judge", "gpt-4o", "--json"]
    res = CliRunner().invoke(main, base + ["--no-traces", "--experiment", "untraced"])
    assert res.exit_code == 0, res.stderr[-3000:]
    (untraced,) = _runs(tmp_path)
    assert _traces(untraced) == []

    # a cache of its own, so the verdicts come from the judge again (a cache hit makes no call)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "cache-traced"))
    res = CliRunner().invoke(main, base + ["--experiment", "traced"])
    assert res.exit_code == 0, res.stderr[-3000:]
    m = json.loads(res.stdout)
    run = _runs(tmp_path)[-1]
    judge = _traces(run, "judge")
    calls = m["diagnosis/judge_calls"] + m["diagnosis/judge_api_errors"]
    assert calls > 0 and len(judge) == calls == len(_traces(run))
    for t in judge:
        assert t.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
        (span,) = t.data.spans
        assert span.inputs["judged_model"] == "gpt-4o"
        assert span.inputs["prediction"] in {"Glioblastoma", "Brain abscess", "Meningioma"}
        assert span.outputs["status"] in {"answered", "api_error"}
        assert KEY not in json.dumps(t.to_dict())


def test_a_failed_link_logs_the_traces_anew(tmp_path, demo_dir, own_cache, server, monkeypatch):
    """Tracing never costs an answer: when linking fails, each cached answer gets a trace of
    its own (and no case is listed twice)."""
    from mlflow import MlflowClient

    _run("--data", str(demo_dir), "--tasks", "diagnosis")

    def refuse(self, trace_ids, run_id):
        raise RuntimeError("link refused")

    monkeypatch.setattr(MlflowClient, "link_traces_to_run", refuse)
    m = _run("--data", str(demo_dir), "--tasks", "diagnosis")
    assert m["run/cache_hits"] == LIMIT
    first, second = _runs(tmp_path)
    t1, t2 = _traces(first), _traces(second)
    assert len(t2) == LIMIT and not {t.info.trace_id for t in t1} & {t.info.trace_id for t in t2}
    assert {t.info.tags["nova.cached"] for t in t2} == {"true"}
    assert len({t.info.tags["nova.filename"] for t in t2}) == LIMIT
    assert {a["trace_id"] for a in _answers(own_cache, second)} == {t.info.trace_id for t in t2}

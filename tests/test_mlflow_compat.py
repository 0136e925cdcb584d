"""Every MLflow internal of tracking/_compat.py, held to the public API it stands for, and
the public paths the package takes instead where a shortcut was not worth an internal.

Each shortcut is checked here against MLflow's own call on a real sqlite store, so an MLflow
upgrade that changes a reserved key or a store internal fails here, loudly:
- assessments go into the store in one transaction: they read back as the public
  `mlflow.log_feedback` / `log_expectation` write them;
- a trace's request preview is set through MLflow's trace manager: it reads back through the
  public `mlflow.get_trace`;
- the reserved trace keys link a trace to its run as `mlflow.search_traces` finds it.
Each also has its public fallback checked.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from nova_mlflow import tracking
from nova_mlflow.tracking import _compat


def _frame(n: int = 5, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "filename": [f"case{i + offset:04d}_001.png" for i in range(n)],
        "best_iou": [0.1 * i for i in range(n)],
        "detected30": [i % 2 for i in range(n)],
        "answer": [None if i == 2 else f'{{"boxes": [[{i}, 2, 3, 4]]}}' for i in range(n)],
        "clinical_hits": [["edema"] if i % 2 else [] for i in range(n)],
    })


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def test_results_are_tables_mlflow_reads_and_metrics(tmp_path):
    import mlflow

    tables = {"tables/localization_cases.json": _frame(),
              "tables/diagnosis_cases.json": _frame(3, 100)}
    with tracking.start_run("tables", "ours") as ours:
        ours.results({"localization/map30": 12.5, "run/requests": 6.0}, tables)
    run = _client().get_run(ours.run_id)
    assert run.data.metrics == {"localization/map30": 12.5, "run/requests": 6.0}
    table = mlflow.load_table("tables/localization_cases.json", run_ids=[ours.run_id])
    assert len(table) == 5 and list(table["filename"]) == list(_frame()["filename"])


def test_results_append_to_a_table_the_run_already_has():
    """A resumed run (nova-mlflow sync) keeps log_table's append semantics."""
    import mlflow

    f = "tables/captioning_cases.json"
    with tracking.start_run("tables", "resumed") as run:
        run.table(_frame(2), f)
    with tracking.resume_run(run.run_id) as again:
        again.results({"captioning/meteor": 1.0}, {f: _frame(3, 10)})
    assert len(mlflow.load_table(f, run_ids=[run.run_id])) == 5


def test_start_run_links_the_prompts_it_is_given():
    import mlflow

    tracking.tracking_uri()  # this test's store (the default ./mlflow.db of its directory)
    a = mlflow.genai.register_prompt(name="nova-test-a", template="A {{x}}")
    mlflow.genai.register_prompt(name="nova-test-a", template="A2 {{x}}")
    b = mlflow.genai.register_prompt(name="nova-test-b", template="B {{y}}")
    uris = [f"prompts:/nova-test-a/{a.version}", "prompts:/nova-test-a/2",
            f"prompts:/nova-test-b/{b.version}"]
    with tracking.start_run("prompts", "linked", prompt_uris=uris) as run:
        pass
    linked = json.loads(_client().get_run(run.run_id).data.tags["mlflow.linkedPrompts"])
    assert sorted((e["name"], e["version"]) for e in linked) == [
        ("nova-test-a", "1"), ("nova-test-a", "2"), ("nova-test-b", "1")]


def _dataset_frames(real_metadata, demo_dir):
    from nova_mlflow.data import cases_frame, load_dataset

    real = cases_frame(load_dataset(real_metadata, check_images=False))
    holes = real.head(20).copy()
    holes.loc[holes.index[::3], "clinical_history"] = None  # missing text: not required
    holes["final_diagnosis"] = [None] * len(holes)  # all missing: object dtype, left to MLflow
    holes["listy"] = [["a"] if i % 2 else [] for i in range(len(holes))]  # left to MLflow
    holes["score"] = [0.5 if i % 4 else float("nan") for i in range(len(holes))]
    untypable = real.head(3).copy()
    untypable["odd"] = [{"k": 1}, [1, 2], 3]  # MLflow logs such a frame without a schema
    return {"NOVA metadata": real, "demo": cases_frame(load_dataset(str(demo_dir))),
            "holes": holes, "untypable": untypable}  # no rows: MLflow's digest fails on pandas 3 (mlflow 3.17.2)


@pytest.mark.filterwarnings("ignore::UserWarning")  # MLflow's hints on the reference path
def test_dataset_input_is_what_log_input_logs(real_metadata, demo_dir):
    """The logged input (source, schema, profile, tags) is the one MLflow's own calls log,
    and its digest is the dataset's own."""
    import mlflow

    for i, (label, df) in enumerate(_dataset_frames(real_metadata, demo_dir).items()):
        digest = f"{i:016x}"  # the store keeps one dataset row per experiment, name and digest
        with tracking.start_run("datasets-ours", label) as ours:
            ours.dataset(df, name="nova", source=str(real_metadata), digest=digest,
                         targets="final_diagnosis")
        with tracking.start_run("datasets-mlflow", label) as ref:
            ds = mlflow.data.from_pandas(df, source=str(real_metadata), name="nova",
                                         targets="final_diagnosis")
            mlflow.log_input(ds, context="evaluation", tags={"nova_digest": digest})
        a, b = (_client().get_run(r.run_id).inputs.dataset_inputs for r in (ours, ref))
        assert len(a) == len(b) == 1, label
        mine, theirs = a[0].dataset.to_dictionary(), b[0].dataset.to_dictionary()
        assert mine.pop("digest") == digest
        theirs.pop("digest")
        assert mine == theirs, label
        assert ({t.key: t.value for t in a[0].tags}
                == {t.key: t.value for t in b[0].tags}), label

def test_bulk_insert_reads_back_like_the_public_api(tmp_path):
    import mlflow

    from nova_mlflow.tracking import assessments as tt

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
    taken = []
    orig = _compat.insert_assessments
    _compat.insert_assessments = lambda entities: taken.append(orig(entities)) or taken[-1]
    try:
        n = tt.log_assessments([tt.CaseAssessments(ids[1], expectations, feedback)])
    finally:
        _compat.insert_assessments = orig
    assert n == 3 and taken == [True]  # the one-transaction path ran (not its fallback)

    def seen(tid):
        t = mlflow.get_trace(tid)
        return sorted((a.name, a.value, a.rationale, a.source.source_type, a.source.source_id)
                      for a in t.info.assessments)

    assert seen(ids[0]) == seen(ids[1]) and len(seen(ids[0])) == 3
    # the public-API fallback (a tracking server) gives the same
    orig = _compat.insert_assessments
    _compat.insert_assessments = lambda entities: False
    try:
        tt.log_assessments([tt.CaseAssessments(ids[2], expectations, feedback)])
    finally:
        _compat.insert_assessments = orig
    assert seen(ids[2]) == seen(ids[0])
    # and the stored rows agree column by column (aggregates, experiment, trace timestamp,
    # metadata naming the run), apart from ids and write times
    import sqlite3

    db = os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM assessments ORDER BY name")]
    assert len(rows) == 9

    def comparable(r):
        return {k: v for k, v in r.items() if k not in (
            "assessment_id", "trace_id", "created_timestamp", "last_updated_timestamp",
            "trace_timestamp_ms")}

    by_trace = {t: [comparable(r) for r in rows if r["trace_id"] == t] for t in ids}
    assert by_trace[ids[1]] == by_trace[ids[0]] == by_trace[ids[2]]
    stamps = {r["trace_id"]: r["trace_timestamp_ms"] for r in rows}
    for t in ids:
        assert stamps[t] == mlflow.get_trace(t).info.timestamp_ms


def test_request_preview_reads_back_through_the_public_api():
    """The preview set through the trace manager is what mlflow.get_trace shows; without the
    internal (the fallback) the trace still exports, with MLflow's own preview."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("preview")
    key = {"filename": "case0001_001.png", "case_id": "case0001", "task": "diagnosis"}
    span = mlflow.start_span_no_context("x", inputs={"text": "a long prompt"},
                                        experiment_id=exp.experiment_id)
    assert _compat.set_request_preview(span.trace_id, key) is True
    span.end()
    assert _compat.set_request_preview("no-such-trace", key) is False
    other = mlflow.start_span_no_context("y", inputs={"text": "a long prompt"},
                                         experiment_id=exp.experiment_id)
    other.end()
    mlflow.flush_trace_async_logging()
    assert json.loads(mlflow.get_trace(span.trace_id).info.request_preview) == key
    assert "a long prompt" in mlflow.get_trace(other.trace_id).info.request_preview


def test_reserved_trace_keys_link_a_trace_to_its_run():
    """The run a span names in _compat.SOURCE_RUN is the run mlflow.search_traces finds it
    under; CHAT_USAGE is what the trace's token usage is read from."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("linked")
    with tracking.start_run("linked", "owner") as run:
        pass
    span = mlflow.start_span_no_context("x", metadata={_compat.SOURCE_RUN: run.run_id},
                                        attributes={_compat.CHAT_USAGE: {
                                            "input_tokens": 3, "output_tokens": 4,
                                            "total_tokens": 7}},
                                        experiment_id=exp.experiment_id)
    span.end()
    mlflow.flush_trace_async_logging()
    found = mlflow.search_traces(locations=[exp.experiment_id], run_id=run.run_id,
                                 return_type="list")
    assert [t.info.trace_id for t in found] == [span.trace_id]
    assert found[0].info.token_usage["total_tokens"] == 7


def _normalised(trace, ids: dict[str, str]) -> dict:
    """A trace as a dict with its ids, times and sizes replaced by placeholders."""
    text = json.dumps(trace.to_dict(), sort_keys=True)
    for real, alias in ids.items():
        text = text.replace(real, alias)
    d = json.loads(text)
    info = d["info"]
    for k in ("request_time", "execution_duration", "execution_duration_ms"):
        info.pop(k, None)
    for k in ("mlflow.trace.sizeBytes", "mlflow.trace.sizeStats"):
        info["trace_metadata"].pop(k, None)
    for span in d["data"]["spans"]:
        for k in ("start_time_unix_nano", "end_time_unix_nano", "span_id", "trace_id"):
            span.pop(k, None)
    return d


def test_batched_trace_export_reads_back_like_mlflows_own():
    """A trace written by tracking/export.py (rows of a batch in one transaction, then one
    log_spans) reads back through the public get_trace / search_traces exactly as the one
    MLflow's own exporter writes (log_spans, then start_trace)."""
    import mlflow
    from mlflow.tracing.provider import _get_trace_exporter

    from nova_mlflow.tracking import export

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("export").experiment_id
    queue = export.batch_exports(mlflow.get_tracking_uri())
    assert queue is not None and _get_trace_exporter()._async_queue is queue

    def one(name: str) -> str:
        span = mlflow.start_span_no_context(
            "nova.diagnosis", span_type="LLM", experiment_id=exp,
            inputs={"filename": "case0001_001.png", "text": "Clinical history: ..."},
            attributes={"nova.task": "diagnosis", _compat.MODEL: "gpt-4o"},
            tags={"nova.task": "diagnosis", "nova.role": "model"},
            metadata={_compat.SOURCE_RUN: "run-1"})
        _compat.set_request_preview(span.trace_id, {"filename": "case0001_001.png"})
        span.set_outputs({"text": "1. Glioblastoma", "status": "answered"})
        span.set_attributes({_compat.CHAT_USAGE: {"input_tokens": 5, "output_tokens": 2,
                                                  "total_tokens": 7}})
        span.end()
        return span.trace_id

    ours = one("ours")
    mlflow.flush_trace_async_logging()
    assert queue.written >= 1 and queue.failed == 0
    _get_trace_exporter()._async_queue = queue.inner  # MLflow's own export, for reference
    try:
        theirs = one("theirs")
        mlflow.flush_trace_async_logging()
    finally:
        _get_trace_exporter()._async_queue = queue
    a, b = mlflow.get_trace(ours), mlflow.get_trace(theirs)
    assert _normalised(a, {ours: "TRACE"}) == _normalised(b, {theirs: "TRACE"})
    found = {t.info.trace_id: t for t in mlflow.search_traces(
        locations=[exp], filter_string="tags.`nova.task` = 'diagnosis'", return_type="list")}
    assert set(found) == {ours, theirs}
    assert found[ours].info.token_usage == found[theirs].info.token_usage == {
        "input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    assert _normalised(found[ours], {ours: "TRACE"}) == _normalised(found[theirs], {theirs: "TRACE"})
    # and the rows themselves: every column of the trace row, the tag and metadata keys
    from mlflow.store.tracking.dbmodels.models import SqlTraceInfo, SqlTraceMetadata, SqlTraceTag
    from mlflow.tracking._tracking_service.utils import _get_store

    # db_payload_generation counts the writes that touched a trace's spans (a guard against
    # archival): MLflow's own export writes a trace once or twice, depending on whether
    # log_spans or start_trace lands first (1 or 2); ours writes it once (1)
    skip = {"request_id", "timestamp_ms", "execution_time_ms", "db_payload_generation"}
    with _get_store().ManagedSessionMaker() as session:
        def row(tid):
            r = session.query(SqlTraceInfo).filter_by(request_id=tid).one()
            return {c.key: getattr(r, c.key) for c in SqlTraceInfo.__table__.columns
                    if c.key not in skip}

        def keys(model, tid):
            return sorted(r.key for r in session.query(model).filter_by(request_id=tid))

        assert row(ours) == row(theirs)
        assert keys(SqlTraceTag, ours) == keys(SqlTraceTag, theirs)
        assert keys(SqlTraceMetadata, ours) == keys(SqlTraceMetadata, theirs)


def test_bulk_trace_insert_writes_nothing_when_a_trace_exists():
    """A batch holding a trace already in the store: False, nothing written (the caller
    then writes each trace through start_trace)."""
    import mlflow
    from mlflow.tracing.provider import _get_trace_exporter

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("bulk-traces").experiment_id
    span = mlflow.start_span_no_context("x", experiment_id=exp)
    span.end()
    mlflow.flush_trace_async_logging()
    existing = mlflow.get_trace(span.trace_id)
    new = mlflow.start_span_no_context("y", experiment_id=exp)
    client = _get_trace_exporter()._client
    import copy

    existing.info.tags = {k: v for k, v in existing.info.tags.items()  # the store's own
                          if k not in ("mlflow.artifactLocation", "mlflow.trace.spansLocation")}
    fresh = copy.deepcopy(existing)
    fresh.info.trace_id = "tr-" + "0" * 32
    assert _compat.insert_traces(client, [fresh, existing]) is False
    assert mlflow.search_traces(locations=[exp], filter_string=f"trace.request_id = '{fresh.info.trace_id}'",
                                return_type="list") == []
    assert _compat.insert_traces(client, [fresh]) is True
    new.end()
    mlflow.flush_trace_async_logging()


def test_trace_lookup_is_what_search_traces_finds():
    """The linking lookup through the store's tables gives what the public search_traces
    gives: the traces of the experiment among the ids, with their case tags."""
    import mlflow

    from nova_mlflow.tracking import linking

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("lookup").experiment_id
    other = mlflow.set_experiment("lookup-other").experiment_id
    ids = []
    for i, e in enumerate((exp, exp, other)):
        span = mlflow.start_span_no_context("x", experiment_id=e, tags={
            "nova.filename": f"case{i}.png", "nova.task": "diagnosis"} if i else {})
        span.end()
        ids.append(span.trace_id)
    mlflow.flush_trace_async_logging()
    asked = ids + ["tr-" + "f" * 32]
    fast = _compat.trace_cases(asked, exp)
    assert fast == {ids[0]: ("", ""), ids[1]: ("case1.png", "diagnosis")}
    orig = _compat.trace_cases
    _compat.trace_cases = lambda *a: None  # the public fallback
    try:
        assert linking.trace_cases(asked, exp) == fast
    finally:
        _compat.trace_cases = orig

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
    n = tt.log_assessments([tt.CaseAssessments(ids[1], expectations, feedback)])
    assert n == 3

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

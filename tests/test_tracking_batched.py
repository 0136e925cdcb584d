"""The batched logging of tracking.py leaves a run exactly as MLflow's own calls would.

RunLogger.results writes the per-case tables and their run tag itself (one upload, one store
write) and start_run links the prompts through the run tag in the call that creates the run.
Each is checked here against the MLflow API it replaces, on a real sqlite store.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nova_mlflow import tracking


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


def test_results_write_what_log_table_writes(tmp_path):
    import mlflow

    tables = {"tables/localization_cases.json": _frame(),
              "tables/diagnosis_cases.json": _frame(3, 100)}
    with tracking.start_run("batched", "ours") as ours:
        ours.results({"localization/map30": 12.5, "run/requests": 6.0}, tables, tmp_path / "st")
    with tracking.start_run("batched", "mlflow's") as ref:
        for f, df in tables.items():
            mlflow.log_table(df, artifact_file=f)

    client = _client()
    ours_run, ref_run = client.get_run(ours.run_id), client.get_run(ref.run_id)
    assert (json.loads(ours_run.data.tags[tracking.LOGGED_ARTIFACTS_TAG])
            == json.loads(ref_run.data.tags[tracking.LOGGED_ARTIFACTS_TAG]))
    assert ours_run.data.metrics == {"localization/map30": 12.5, "run/requests": 6.0}
    for f in tables:
        mine = client.download_artifacts(ours.run_id, f, str(tmp_path / "a"))
        theirs = client.download_artifacts(ref.run_id, f, str(tmp_path / "b"))
        assert open(mine, "rb").read() == open(theirs, "rb").read()
    # MLflow's reader finds both runs' rows under the same table name
    both = mlflow.load_table("tables/localization_cases.json", run_ids=[ours.run_id, ref.run_id],
                             extra_columns=["run_id"])
    assert both.groupby("run_id").size().to_dict() == {ours.run_id: 5, ref.run_id: 5}


def test_results_append_to_a_table_the_run_already_has(tmp_path):
    """A resumed run (nova-mlflow sync) keeps log_table's append semantics."""
    import mlflow

    f = "tables/captioning_cases.json"
    with tracking.start_run("batched", "resumed") as run:
        run.table(_frame(2), f)
    with tracking.resume_run(run.run_id) as again:
        again.results({"captioning/meteor": 1.0}, {f: _frame(3, 10)}, tmp_path / "st")
    table = mlflow.load_table(f, run_ids=[run.run_id])
    assert len(table) == 5
    entries = json.loads(_client().get_run(run.run_id).data.tags[tracking.LOGGED_ARTIFACTS_TAG])
    assert entries == [{"path": f, "type": "table"}]


def test_start_run_links_prompts_as_load_prompt_does():
    import mlflow

    tracking.tracking_uri()  # this test's store (the default ./mlflow.db of its directory)
    a = mlflow.genai.register_prompt(name="nova-test-a", template="A {{x}}")
    mlflow.genai.register_prompt(name="nova-test-a", template="A2 {{x}}")
    b = mlflow.genai.register_prompt(name="nova-test-b", template="B {{y}}")
    uris = [f"prompts:/nova-test-a/{a.version}", "prompts:/nova-test-a/2",
            f"prompts:/nova-test-b/{b.version}"]
    with tracking.start_run("batched", "ours", prompt_uris=uris) as ours:
        pass
    with tracking.start_run("batched", "mlflow's") as ref:
        for uri in uris:
            mlflow.genai.load_prompt(uri)
    client = _client()
    tag = tracking.LINKED_PROMPTS_TAG
    assert (json.loads(client.get_run(ours.run_id).data.tags[tag])
            == json.loads(client.get_run(ref.run_id).data.tags[tag]))


@pytest.mark.parametrize("uri", ["nova-test-a", "prompts:/nova-test-a@latest", "prompts:/x/v1"])
def test_linked_prompts_tag_needs_version_uris(uri):
    with pytest.raises(ValueError, match="not a prompt version URI"):
        tracking.linked_prompts_tag([uri])


def test_results_upload_only_their_own_tables(tmp_path):
    """A staging folder reused from an earlier call (a resumed run's directory) never leaks
    that call's tables into this run."""
    staging = tmp_path / "st"
    with tracking.start_run("batched", "three") as first:
        first.results({}, {"tables/localization_cases.json": _frame(),
                           "tables/diagnosis_cases.json": _frame()}, staging)
    with tracking.start_run("batched", "one") as second:
        second.results({}, {"tables/diagnosis_cases.json": _frame(2)}, staging)
    files = [f.path for f in _client().list_artifacts(second.run_id, "tables")]
    assert files == ["tables/diagnosis_cases.json"]

"""The only module that imports mlflow.

Default store: sqlite ./mlflow.db (never the deprecated file store). A run opened here is
closed FINISHED on success and FAILED on any exception, so no run is ever left RUNNING.
Per-case values go into tables (log_table), never one log_metric per case.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema

log = logging.getLogger("nova_mlflow")

MAX_PARAM_LEN = 6000
UPLOAD_THREADS = 8  # files uploaded at once to a remote artifact store
# run tags MLflow's own APIs maintain (mlflow.utils.mlflow_tags.MLFLOW_LOGGED_ARTIFACTS and
# TraceTagKey.LINKED_PROMPTS); written here in the same format, in fewer store writes
LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:///<cwd>/mlflow.db (set explicitly)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def write_table_file(df: pd.DataFrame, target: Path) -> None:
    """The JSON file mlflow.log_table writes for `df`, byte for byte, in about a third of the time.

    log_table calls `df.to_json(orient="split", index=False, date_format="iso")`. For that
    orient pandas first copies the frame into Python lists (to_dict), boxing every cell in
    Python; that copy is two thirds of the time. Written as the orient "values" arrays of the
    header and of the rows, the same encoder walks the frame's columns itself. On object
    columns pandas writes the same bytes faster than on pandas 3's arrow-backed strings.
    tests/test_tracking_batched.py holds both ways to the same bytes.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if df.columns.empty or not all(isinstance(c, str) for c in df.columns):
        df.to_json(target, orient="split", index=False, date_format="iso")
        return
    cells = df.astype(object)
    header = pd.DataFrame([list(cells.columns)], dtype=object).to_json(orient="values")
    rows = cells.to_json(orient="values", date_format="iso")
    with open(target, "w", encoding="utf-8") as fh:
        fh.write('{"columns":' + header[1:-1] + ',"data":' + rows + "}")


class RunLogger:
    """Thin wrapper so the rest of the package never touches mlflow's API."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self._tags_at_start: dict[str, str] = dict(run.data.tags)

    def params(self, params: Mapping[str, Any]) -> None:
        clean = {k: ("" if v is None else str(v))[:MAX_PARAM_LEN] for k, v in params.items()}
        mlflow.log_params(clean)

    def metrics(self, metrics: Mapping[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def table(self, df: pd.DataFrame, artifact_file: str) -> None:
        mlflow.log_table(data=df, artifact_file=artifact_file)

    def results(self, metrics: Mapping[str, float], tables: Mapping[str, pd.DataFrame],
                staging: Path) -> None:
        """Aggregate metrics and per-case tables in one upload and one store write.

        Each table is the file mlflow.log_table writes (pandas JSON, orient "split") and is
        registered in the run tag log_table maintains, so the UI's evaluation view and
        mlflow.load_table see it as a table. log_table itself costs three store round trips
        per table (list the artifacts for an append, read the run, rewrite the tag); for a
        fresh file none is needed: all tables go up in one log_artifacts and the tag goes
        with the metrics in one log_batch. A table already in the run (a resumed run) is
        appended by log_table as before.
        """
        known = json.loads(self._tags_at_start.get(LOGGED_ARTIFACTS_TAG, "[]"))
        fresh = {f: df for f, df in tables.items() if {"path": f, "type": "table"} not in known}
        for f, df in tables.items():
            if f not in fresh:
                self.table(df, f)
        tags: list[RunTag] = []
        if fresh:
            shutil.rmtree(staging, ignore_errors=True)  # upload only this call's tables
            for f, df in fresh.items():
                write_table_file(df, staging / f)
            self.artifacts(staging)
            entries = known + [{"path": f, "type": "table"} for f in fresh]
            tags.append(RunTag(LOGGED_ARTIFACTS_TAG, json.dumps(entries)))
        now = int(time.time() * 1000)
        MlflowClient().log_batch(self.run_id, tags=tags, metrics=[
            Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        """A whole local folder (its subfolders kept), as mlflow.log_artifacts lays it out.

        A remote artifact store (`mlflow server --serve-artifacts`, S3, ...) gets one upload
        per file, which log_artifacts sends one after another; here they go
        UPLOAD_THREADS at a time. A local store copies the folder in one call.
        """
        if urlparse(self.run.info.artifact_uri).scheme in ("", "file"):
            mlflow.log_artifacts(str(folder), artifact_path=artifact_path)
            return
        uploads = []
        for root, _, names in os.walk(folder):
            rel = Path(root).relative_to(folder).as_posix()
            dest = "/".join(p for p in (artifact_path, None if rel == "." else rel) if p) or None
            uploads += [(os.path.join(root, n), dest) for n in sorted(names)]
        if not uploads:
            return
        client = MlflowClient()
        client.log_artifact(self.run_id, *uploads[0])  # resolves (and caches) the run's store
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="nova-upload") as pool:
            for done in [pool.submit(client.log_artifact, self.run_id, *u) for u in uploads[1:]]:
                done.result()  # the first failure is raised here, after the others finished

    def dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.log_dict(dict(data), artifact_file)

    def dataset(self, df: pd.DataFrame, *, name: str, source: str, digest: str,
                targets: str | None = None) -> None:
        """Dataset as a run input, as mlflow.data.from_pandas + mlflow.log_input log it, with
        two things given rather than computed by MLflow from the frame: the digest, which is
        the dataset's own (metadata and image bytes: the `dataset_digest` param, so the UI's
        dataset version and the param agree), and the schema (frame_schema)."""
        with warnings.catch_warnings():  # source-kind and integer-column hints do not apply here
            warnings.simplefilter("ignore", UserWarning)
            ds = _SchemaGivenDataset(df=df, source=resolve_dataset_source(source), name=name,
                                     targets=targets, digest=digest, schema=frame_schema(df))
            mlflow.log_input(ds, context="evaluation", tags={"nova_digest": digest})


def frame_schema(df: pd.DataFrame) -> Schema | None:
    """The schema MLflow infers for `df`, without walking every cell of its text columns.

    MLflow infers a text column by looking at each value (about 30 ms for the 906 NOVA
    cases). A column of pandas' string dtype can only hold text or missing values, so its
    type is "string" and it is required when nothing is missing; every other column goes
    through the function PandasDataset.schema calls, with its outcome on failure (no schema).
    tests/test_tracking_batched.py holds this to MLflow's own inference.
    """
    from mlflow.types.utils import _infer_schema

    text = {c for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)}
    others = [c for c in df.columns if c not in text]
    inferred = {}
    if others:
        try:
            inferred = {spec.name: spec for spec in _infer_schema(df[others]).inputs}
        except Exception:  # as PandasDataset.schema: a frame MLflow cannot type has no schema
            return None
    return Schema([inferred[c] if c not in text else
                   ColSpec(DataType.string, c, required=not bool(df[c].isna().any()))
                   for c in df.columns])


class _SchemaGivenDataset(PandasDataset):
    """A PandasDataset whose schema is given (frame_schema), not inferred when logged."""

    def __init__(self, *, schema: Schema | None, **kwargs: Any) -> None:
        self._given_schema = schema
        super().__init__(**kwargs)

    @property
    def schema(self) -> Schema | None:
        return self._given_schema


@contextmanager
def start_run(experiment: str, run_name: str | None = None,
              tags: Mapping[str, Any] | None = None,
              prompt_uris: list[str] | None = None) -> Iterator[RunLogger]:
    """Open a run (or attach to the one `mlflow run` made); FAILED on any exception.

    Inside another open run (a sweep's parent) the new run is its child. The registry
    prompts in `prompt_uris` are linked to the run (the tag the UI reads) in the same store
    write that creates the run.
    """
    tracking_uri()
    parent = mlflow.active_run()
    attach = os.environ.get("MLFLOW_RUN_ID") if parent is None else None
    if not attach and parent is None:
        exp = mlflow.set_experiment(experiment)
        fail_orphaned_runs(exp.experiment_id)
    all_tags = {**(tags or {}), "nova.host": socket.gethostname(), "nova.pid": os.getpid()}
    if prompt_uris:
        all_tags[LINKED_PROMPTS_TAG] = linked_prompts_tag(prompt_uris)
    run = mlflow.start_run(run_name=None if attach else run_name, nested=parent is not None,
                           tags={k: str(v) for k, v in all_tags.items()})
    logger = RunLogger(run)
    try:
        yield logger
    except BaseException:
        try:
            mlflow.end_run(status="FAILED")
        except Exception as exc:  # the server may be the thing that failed; keep the first error
            log.warning("could not mark run %s FAILED (%s)", logger.run_id, type(exc).__name__)
        raise
    else:
        mlflow.end_run(status="FINISHED")


@contextmanager
def resume_run(run_id: str) -> Iterator[RunLogger]:
    """Reopen an existing run (to log results kept on disk); FINISHED or FAILED at the end."""
    tracking_uri()
    run = mlflow.start_run(run_id=run_id)
    logger = RunLogger(run)
    try:
        yield logger
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def is_unreachable(exc: BaseException) -> bool:
    """Did this fail because the tracking server could not be reached?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = f"{type(e).__name__} {e}"
        if any(k in text for k in ("ConnectionError", "Connection refused", "Max retries exceeded",
                                   "NewConnectionError", "RemoteDisconnected", "timed out")):
            return True
        e = e.__cause__ or e.__context__
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs of this host whose process is gone (a kill -9).

    A killed process cannot close its run; the next run on the same machine does it, with
    the reason as a tag. Runs of other hosts are left alone (their process may be alive).
    """
    client = MlflowClient()
    host = socket.gethostname()
    found = client.search_runs([experiment_id],
                               filter_string=f"attributes.status = 'RUNNING' and tags.`nova.host` = '{host}'",
                               max_results=200)
    closed = []
    for r in found:
        pid = r.data.tags.get("nova.pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            client.set_tag(r.info.run_id, "nova.failed_reason",
                           f"process {pid} on {host} ended without closing the run (killed?)")
            client.set_terminated(r.info.run_id, status="FAILED")
            closed.append(r.info.run_id)
    if closed:
        log.warning("marked %d orphaned run(s) FAILED: %s", len(closed), ", ".join(closed))
    return closed


def run_ui_url(run: RunLogger) -> str:
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
    return f"mlflow ui --backend-store-uri {uri}  (run {run.run_id})"


def get_run(run_id: str) -> Any:
    tracking_uri()
    return MlflowClient().get_run(run_id)


# --- prompt registry ----------------------------------------------------------------------

def ensure_registered(name: str, template: str, sha256: str, version_label: str,
                      description: str = "") -> str:
    """URI of a registry version holding exactly this text; registers one only if none does.

    Call it outside a run: loading versions inside a run would link every one of them.
    """
    tracking_uri()
    latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest", allow_missing=True)
    if latest is not None:
        for v in range(int(latest.version), 0, -1):
            pv = latest if v == int(latest.version) else mlflow.genai.load_prompt(
                f"prompts:/{name}/{v}", allow_missing=True)
            if pv is not None and (pv.tags or {}).get("nova.sha256") == sha256:
                return f"prompts:/{name}/{pv.version}"
    pv = mlflow.genai.register_prompt(
        name=name, template=template,
        commit_message=f"{version_label}: {description}"[:500],
        tags={"nova.version": version_label, "nova.sha256": sha256})
    return f"prompts:/{name}/{pv.version}"


def linked_prompts_tag(uris: list[str]) -> str:
    """The run tag that links registry prompt versions to a run, from "prompts:/name/version"
    URIs: the value mlflow.genai.load_prompt writes inside a run (one read of the prompt and
    of the run, one tag write, per prompt), built here without a store call."""
    entries: list[dict[str, str]] = []
    for uri in uris:
        name, _, version = uri.removeprefix("prompts:/").rpartition("/")
        if not name or not version.isdigit():
            raise ValueError(f"not a prompt version URI: {uri!r}")
        entry = {"name": name, "version": version}
        if entry not in entries:
            entries.append(entry)
    return json.dumps(entries)


def answers_of_run(run_id: str, dst: Path) -> tuple[Path, dict[str, str]]:
    """Download a run's raw answers and the params that say how to read them."""
    from nova_mlflow.errors import InputError

    tracking_uri()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
        path = client.download_artifacts(run_id, "answers/answers.jsonl", str(dst))
    except Exception as exc:  # MlflowException / missing artifact
        raise InputError(f"cannot read the answers of run {run_id} ({type(exc).__name__})",
                         field="--from-run") from None
    params = run.data.params
    return Path(path), {k: params[k] for k in ("frame", "model") if k in params}

"""MLflow runs: open (or attach to) a run, log into it, close it FINISHED or FAILED.

Default store: sqlite ./mlflow.db (never the deprecated file store). A run opened here is
closed FINISHED on success and FAILED on any exception, so no run is ever left RUNNING.
Per-case values go into tables, never one log_metric per case.
"""

from __future__ import annotations

import logging
import os
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
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from nova_mlflow.errors import InputError
from nova_mlflow.paths import pending_file

log = logging.getLogger("nova_mlflow")

MAX_PARAM_LEN = 6000
PENDING_SYNC_TAG = "nova.pending_sync"  # the run's results are on disk, waiting for `sync`
UPLOAD_THREADS = 8  # files uploaded at once to a remote artifact store


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:///<cwd>/mlflow.db (set explicitly)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


class RunLogger:
    """Thin wrapper so the rest of the package never touches mlflow's API."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self._tags_at_start: dict[str, str] = dict(run.data.tags)
        self._params_at_start: dict[str, str] = dict(run.data.params)

    def params(self, params: Mapping[str, Any]) -> None:
        """Log params; those the run holds already are kept as they are.

        `mlflow run` logs the MLproject's parameters before our entry point starts (limit=0,
        concurrency=8.0, ...): MLflow refuses to change a param, and both spellings say the
        same thing, so the project's value stays.
        """
        clean = {k: ("" if v is None else str(v))[:MAX_PARAM_LEN] for k, v in params.items()}
        kept = {k for k in clean if k in self._params_at_start}
        if kept:
            log.debug("params already logged by the project run, kept: %s", ", ".join(sorted(kept)))
        mlflow.log_params({k: v for k, v in clean.items() if k not in kept})

    def metrics(self, metrics: Mapping[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def table(self, df: pd.DataFrame, artifact_file: str) -> None:
        mlflow.log_table(data=df, artifact_file=artifact_file)

    def results(self, metrics: Mapping[str, float], tables: Mapping[str, pd.DataFrame]) -> None:
        """Per-case tables (mlflow.log_table: the UI's evaluation view and mlflow.load_table
        read them; a table the run has already is appended to) and the aggregate metrics in
        one store write."""
        for artifact_file, df in tables.items():
            self.table(df, artifact_file)
        now = int(time.time() * 1000)
        MlflowClient().log_batch(self.run_id, metrics=[
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

    def clear_tag(self, key: str) -> None:
        """Remove a tag if the run has it."""
        if key in self._tags_at_start:
            MlflowClient().delete_tag(self.run_id, key)

    def dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.log_dict(dict(data), artifact_file)

    def dataset(self, df: pd.DataFrame, *, name: str, source: str, digest: str,
                targets: str | None = None) -> None:
        """The dataset as a run input, with the dataset's own digest (metadata and image
        bytes: the `dataset_digest` param), so the UI's dataset version and the param agree."""
        with warnings.catch_warnings():  # source-kind and integer-column hints do not apply here
            warnings.simplefilter("ignore", UserWarning)
            ds = mlflow.data.from_pandas(df, source=source, targets=targets, name=name,
                                         digest=digest)
            mlflow.log_input(ds, context="evaluation", tags={"nova_digest": digest})


@contextmanager
def start_run(experiment: str, run_name: str | None = None,
              tags: Mapping[str, Any] | None = None,
              prompt_uris: list[str] | None = None) -> Iterator[RunLogger]:
    """Open a run (or attach to the one `mlflow run` made); FAILED on any exception.

    Inside another open run (a sweep's parent) the new run is its child. The registry
    prompts in `prompt_uris` are linked to the run by loading them inside it.
    """
    tracking_uri()
    parent = mlflow.active_run()
    attach = os.environ.get("MLFLOW_RUN_ID") if parent is None else None
    if not attach and parent is None:
        exp = mlflow.set_experiment(experiment)
        fail_orphaned_runs(exp.experiment_id)
    all_tags = {**(tags or {}), "nova.host": socket.gethostname(), "nova.pid": os.getpid()}
    run = mlflow.start_run(run_name=None if attach else run_name, nested=parent is not None,
                           tags={k: str(v) for k, v in all_tags.items()})
    for uri in dict.fromkeys(prompt_uris or []):
        mlflow.genai.load_prompt(uri)  # inside the run: links the version to it
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
        try:
            mlflow.end_run(status="FAILED")
        except Exception as exc:  # the server may be the thing that failed; keep the first error
            log.warning("could not mark run %s FAILED (%s)", logger.run_id, type(exc).__name__)
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
    the reason as a tag. Runs of other hosts are left alone (their process may be alive),
    and so are runs whose results wait on disk for `nova-mlflow sync` (their process ended
    on purpose when the server went away): those get the tag `nova.pending_sync` instead.
    """
    client = MlflowClient()
    host = socket.gethostname()
    found = client.search_runs([experiment_id],
                               filter_string=f"attributes.status = 'RUNNING' and tags.`nova.host` = '{host}'",
                               max_results=200)
    closed = []
    for r in found:
        pid = r.data.tags.get("nova.pid", "")
        pending = pending_file(r.info.run_id)
        if pending.is_file():
            if r.data.tags.get(PENDING_SYNC_TAG) != str(pending):
                client.set_tag(r.info.run_id, PENDING_SYNC_TAG, str(pending))
            continue
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


def answers_of_run(run_id: str, dst: Path) -> tuple[Path, dict[str, str]]:
    """Download a run's raw answers and the params that say how to read them."""
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

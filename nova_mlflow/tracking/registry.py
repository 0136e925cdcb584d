"""MLflow access for `compare` and `gate` (a tracking module: it may import mlflow).

Reads runs, their per-case tables (`tables/<task>_cases.json`, written by log_table as
{"columns", "data"}) through the tracking client, so a comparison works the same against a
local sqlite store and a remote `mlflow server`; logs comparison runs; and drives the model
registry (pyfunc from code, versions, aliases, tags). Every store error a user can cause
(unknown run id, unknown experiment) becomes an InputError (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from nova_mlflow.errors import InputError
from nova_mlflow.tracking.runs import tracking_uri

log = logging.getLogger("nova_mlflow")

TABLE_DIR = "tables"
PYFUNC_FILE = Path(__file__).with_name("pyfunc.py")
MAX_TAG_LEN = 5000  # sqlite store limit for tag values is 8000; keep a margin


@dataclass(frozen=True)
class RunRecord:
    """What compare/gate need of a run, detached from mlflow's entity classes."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.run_name or '(unnamed)'} ({self.run_id[:8]})"


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: str
    run_id: str | None  # the run whose configuration the version holds
    source: str
    tags: dict[str, str] = field(default_factory=dict)


def _client() -> MlflowClient:
    tracking_uri()
    return MlflowClient()


def _record(run: Any) -> RunRecord:
    return RunRecord(run.info.run_id, run.info.run_name or "", run.info.experiment_id,
                     run.info.status, int(run.info.start_time or 0), dict(run.data.params),
                     dict(run.data.metrics), dict(run.data.tags))


def get_run(run_id: str) -> RunRecord:
    """The run, or InputError naming the id (exit 2)."""
    try:
        return _record(_client().get_run(run_id))
    except MlflowException as exc:
        raise InputError(f"--run {run_id}: no such run in {mlflow.get_tracking_uri()} "
                         f"({exc.error_code})") from None


def experiment_runs(name: str) -> tuple[str, list[RunRecord]]:
    """Experiment id and its FINISHED runs, oldest first."""
    client = _client()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise InputError(f"--experiment {name!r}: no such experiment in {mlflow.get_tracking_uri()}")
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs += [_record(r) for r in page]
        token = page.token
        if not token:
            break
    return exp.experiment_id, runs


def table_tasks(run_id: str) -> set[str]:
    """Task names whose per-case table the run logged."""
    files = _client().list_artifacts(run_id, TABLE_DIR)
    return {Path(f.path).name[:-len("_cases.json")] for f in files
            if Path(f.path).name.endswith("_cases.json")}


@dataclass(frozen=True)
class LoggedTable:
    """A run's per-case table as logged: {"columns", "data"} and the file's sha256."""

    path: str  # artifact path, tables/<task>_cases.json
    content: dict[str, Any]
    sha256: str


def download_table(run_id: str, task: str) -> LoggedTable | None:
    """The run's per-case table of `task`, or None if it logged none."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr readable
    artifact = f"{TABLE_DIR}/{task}_cases.json"
    with tempfile.TemporaryDirectory(prefix="nova-table-") as tmp:
        try:
            path = _client().download_artifacts(run_id, artifact, tmp)
        except (MlflowException, OSError):
            return None
        data = Path(path).read_bytes()
    return LoggedTable(artifact, json.loads(data), hashlib.sha256(data).hexdigest())


def log_run(experiment_id: str, run_name: str, files: Iterable[tuple[Path, str]],
            tags: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> str:
    """A new FINISHED run holding the given files (path, artifact dir); FAILED on error.

    Uses the client, not the fluent API, so no global active run is touched.
    """
    client = _client()
    run = client.create_run(experiment_id, tags={k: str(v)[:MAX_TAG_LEN] for k, v in tags.items()},
                            run_name=run_name)
    run_id = run.info.run_id
    try:
        log_to_run(run_id, files, {}, params)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED", int(time.time() * 1000))
    return run_id


def log_to_run(run_id: str, files: Iterable[tuple[Path, str]], tags: Mapping[str, Any],
               params: Mapping[str, Any] | None = None) -> None:
    """Files, tags and params into an existing run (the `mlflow run` project run of a gate)."""
    client = _client()
    for key, value in (params or {}).items():
        client.log_param(run_id, key, str(value)[:6000])
    set_run_tags(run_id, tags)
    for path, artifact_dir in files:
        client.log_artifact(run_id, str(path), artifact_dir)


def set_run_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value)[:MAX_TAG_LEN])


def project_run_id() -> str | None:
    """The run `mlflow run` opened for this process (MLFLOW_RUN_ID), if any."""
    return os.environ.get("MLFLOW_RUN_ID") or None


# --- prompt registry --------------------------------------------------------------------

def registry_prompt_text(uri: str) -> str | None:
    """Template text of a registry prompt URI, or None if the store does not hold it."""
    tracking_uri()
    try:
        pv = mlflow.genai.load_prompt(uri, allow_missing=True, link_to_model=False)
    except MlflowException:
        return None
    return None if pv is None else pv.template


# --- model registry ---------------------------------------------------------------------

def _version(mv: Any) -> VersionRecord:
    return VersionRecord(mv.name, str(mv.version), mv.run_id, mv.source, dict(mv.tags or {}))


def register_configuration(registered_model: str, model_config: dict[str, Any],
                           source: RunRecord, prompt_uris: list[str],
                           tags: Mapping[str, str]) -> VersionRecord:
    """Log tracking_pyfunc.py (models from code) with `model_config`, register a version.

    The logged model is created with `source_run_id`, so the version's run_id is the run
    whose configuration it holds, without reopening (and re-timing) that finished run.
    Requirements are pinned explicitly: inferring them would load the model in a subprocess.
    """
    from nova_mlflow import __version__

    tracking_uri()
    try:
        logged = mlflow.initialize_logged_model(
            name="nova-config", source_run_id=source.run_id, experiment_id=source.experiment_id,
            tags={"nova.run_id": source.run_id})
        with warnings.catch_warnings():  # an input example would make log_model call the model
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_FILE), model_config=model_config,
                model_id=logged.model_id, prompts=prompt_uris or None, signature=_signature(),
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"nova-mlflow=={__version__}"])
        mv = mlflow.register_model(info.model_uri, registered_model,
                                   tags={"nova.run_id": source.run_id, **tags})
    except MlflowException as exc:
        raise InputError(f"--registered-model {registered_model!r}: {exc.message}") from None
    return _version(mv)


def _signature() -> ModelSignature:
    """The pyfunc's columns (tracking_pyfunc.py); only task and filename are required."""
    def cols(required: list[str], optional: list[tuple[str, str]]) -> Schema:
        return Schema([ColSpec("string", c) for c in required]
                      + [ColSpec(t, c, required=False) for c, t in optional])

    return ModelSignature(
        inputs=cols(["task", "filename"], [("case_id", "string"), ("clinical_history", "string"),
                                           ("caption", "string"), ("image_path", "string"),
                                           ("image_png", "binary")]),
        outputs=cols(["task", "filename"], [("text", "string"), ("prediction", "string"),
                                            ("error", "string")]))


def alias_version(registered_model: str, alias: str) -> VersionRecord | None:
    """The version behind an alias; None if the model or the alias does not exist yet."""
    client = _client()
    try:
        rm = client.get_registered_model(registered_model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (rm.aliases or {}).get(alias)
    if version is None:
        return None
    return _version(client.get_model_version(registered_model, str(version)))


def set_alias(registered_model: str, alias: str, version: str) -> None:
    _client().set_registered_model_alias(registered_model, alias, version)


def set_version_tags(registered_model: str, version: str, tags: Mapping[str, Any]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(registered_model, version, key, str(value)[:MAX_TAG_LEN])


def get_version(registered_model: str, version: str) -> VersionRecord:
    return _version(_client().get_model_version(registered_model, version))

"""Every MLflow internal this package relies on, in one place, each with a public fallback.

Why this module: MLflow's private modules, reserved tags and database tables change without
notice. Each shortcut here says which public call it stands for, is held to that public call
by tests/test_mlflow_compat.py (which fails loudly when an MLflow upgrade changes the
result), and its caller falls back to the public call when the shortcut raises or is
unavailable. Nothing outside this module touches an MLflow internal (tests/test_house.py).

The shortcuts, and why each is worth keeping (a shortcut whose gain is under 5% of a run's
wall time is not: writing log_table's run tag by hand saved ~95 ms per run on sqlite and
linking prompts through their tag ~30 ms, so both went back to the public calls):
- `set_request_preview`: a trace's request preview (what the UI's "compare to" pairs rows
  by) set to the case key instead of the prompt text; there is no public setter (fallback:
  MLflow's own preview, which pairs no rows across prompt versions).
- `insert_assessments`: every assessment of a run in ONE sqlite transaction instead of one
  per assessment (~25 ms each; a 906-case run has ~15,000) (public: `mlflow.log_assessment`);
  its rows come from MLflow's own mapping without an ORM object each (`_row_builder`: 0.62 s
  of a ~11 s cached traced run, BENCHMARKS "assessment rows").
- `trace_cases`: which of a cached re-run's traces are in its experiment, and their case
  tags, without loading their assessments (one per run that used them) (public:
  `mlflow.search_traces(filter_string="trace.request_id IN (...)")`).
- `swap_export_queue`, `export_task_kind`, `insert_traces`, `add_trace_size_stats`: ended
  traces written 100 at a time (tracking/export.py) instead of MLflow's two transactions per
  trace, which cannot keep up with a run's calls (public: MLflow's own export).
- `SOURCE_RUN`, `CHAT_USAGE`, `MODEL`: reserved trace metadata / span attribute keys that
  link a trace to its run and show token usage and model in the UI (public: a span opened
  inside an active run is linked to it; MLflow's autolog sets usage).
- `ASSESSMENT_RUN`: the reserved assessment metadata key naming the run an assessment belongs
  to, the one `mlflow.genai.evaluate` writes; the UI's run view shows a trace shared by
  several runs with that run's assessments only, `Assessment.run_id` reads it back and
  deleting the run deletes them (public: `mlflow.genai.evaluate` writes it for its own
  assessments; without it every run would show every run's scores on a shared trace).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("nova_mlflow")

try:  # reserved keys; their values are fixed strings in MLflow 3
    from mlflow.tracing.constant import AssessmentMetadataKey, SpanAttributeKey, TraceMetadataKey

    SOURCE_RUN: str = TraceMetadataKey.SOURCE_RUN
    CHAT_USAGE: str = SpanAttributeKey.CHAT_USAGE
    MODEL: str = SpanAttributeKey.MODEL
    ASSESSMENT_RUN: str = AssessmentMetadataKey.SOURCE_RUN_ID
except (ImportError, AttributeError):  # pragma: no cover - an MLflow that moved them
    SOURCE_RUN, CHAT_USAGE, MODEL = "mlflow.sourceRun", "mlflow.chat.tokenUsage", "mlflow.llm.model"
    ASSESSMENT_RUN = "mlflow.assessment.sourceRunId"


def set_request_preview(trace_id: str, key: Mapping[str, Any]) -> bool:
    """Set an open trace's request preview (shown as Request, used to pair runs' rows);
    False when MLflow's trace manager is not there as expected (the preview stays MLflow's)."""
    try:
        from mlflow.tracing.trace_manager import InMemoryTraceManager

        with InMemoryTraceManager.get_instance().get_trace(trace_id) as trace:
            if trace is None:
                return False
            trace.info.request_preview = json.dumps(dict(key), ensure_ascii=False)
        return True
    except Exception as exc:  # noqa: BLE001 - an internal moved: MLflow's own preview
        log.debug("request preview not set (%s)", exc)
        return False


def _row_builder(from_entity: Any) -> Any:
    """MLflow's own entity -> row mapping (`SqlAssessments.from_mlflow_entity`), run with the
    name `SqlAssessments` bound to `dict` inside it, so it returns the row's column values
    instead of building an ORM object: ~40 us less per assessment, ~0.6 s of the 15,000 a
    cached NOVA run writes. Same code, same values (test_mlflow_compat reads them back)."""
    import types

    code_globals = {**from_entity.__globals__, "SqlAssessments": dict}
    return types.FunctionType(from_entity.__code__, code_globals, from_entity.__name__,
                              from_entity.__defaults__, from_entity.__closure__)


def insert_assessments(entities: list[Any]) -> bool:
    """Insert assessments in one transaction on a local SQL store; False to fall back.

    Mirrors SqlAlchemyStore.create_assessment minus its per-row commit (the assessment's
    experiment id and trace timestamp are copied from the trace row, as it does): the rows
    SqlAssessments.from_mlflow_entity builds, written by one executemany.
    """
    try:
        from sqlalchemy import insert

        from mlflow.store.tracking.dbmodels.models import SqlAssessments, SqlTraceInfo
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.store.tracking.utils.sql_trace_rollups import rollups_enabled
        from mlflow.tracking._tracking_service.utils import _get_store

        store = _get_store()
        if not isinstance(store, SqlAlchemyStore) or rollups_enabled():
            return False
        ids = sorted({e.trace_id for e in entities})
        columns = [c.key for c in SqlAssessments.__table__.columns]
        with store.ManagedSessionMaker(read_only=False) as session:
            traces: dict[str, tuple[Any, Any]] = {}
            for i in range(0, len(ids), 500):
                traces.update({r[0]: (r[1], r[2]) for r in session.query(
                    SqlTraceInfo.request_id, SqlTraceInfo.experiment_id,
                    SqlTraceInfo.timestamp_ms).filter(
                    SqlTraceInfo.request_id.in_(ids[i:i + 500]))})
            missing = [t for t in ids if t not in traces]
            if missing:
                log.warning("%d trace(s) not in the store; their assessments are skipped",
                            len(missing))
            to_row = _row_builder(SqlAssessments.from_mlflow_entity.__func__)
            rows = []
            for e in entities:
                if e.trace_id not in traces:
                    continue
                row = to_row(SqlAssessments, e)
                row["experiment_id"], row["trace_timestamp_ms"] = traces[e.trace_id]
                rows.append({k: row.get(k) for k in columns})
            if rows:
                session.execute(insert(SqlAssessments.__table__), rows)
        return True
    except Exception as exc:  # noqa: BLE001 - any surprise: the public API
        log.debug("bulk assessment insert unavailable (%s); using the public API", exc)
        return False


def trace_cases(trace_ids: list[str], experiment_id: str) -> dict[str, tuple[str, str]] | None:
    """{trace id: (its nova.filename tag, its nova.task tag)} of those traces that are in the
    experiment, read from the trace tables of a local SQL store (two columns, no assessments);
    None to fall back to the public `mlflow.search_traces` (tracking/linking.py)."""
    try:
        from mlflow.store.tracking.dbmodels.models import SqlTraceInfo, SqlTraceTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.tracking._tracking_service.utils import _get_store

        store = _get_store()
        if not isinstance(store, SqlAlchemyStore):
            return None
        out: dict[str, dict[str, str]] = {}
        with store.ManagedSessionMaker() as session:
            for i in range(0, len(trace_ids), 500):
                chunk = trace_ids[i:i + 500]
                found = {r[0] for r in session.query(SqlTraceInfo.request_id).filter(
                    SqlTraceInfo.request_id.in_(chunk),
                    SqlTraceInfo.experiment_id == int(experiment_id))}
                for tid, key, value in session.query(
                        SqlTraceTag.request_id, SqlTraceTag.key, SqlTraceTag.value).filter(
                        SqlTraceTag.request_id.in_(list(found)),
                        SqlTraceTag.key.in_(("nova.filename", "nova.task"))):
                    out.setdefault(tid, {})[key] = value
                for tid in found:
                    out.setdefault(tid, {})
        return {t: (d.get("nova.filename", ""), d.get("nova.task", "")) for t, d in out.items()}
    except Exception as exc:  # noqa: BLE001 - the public API
        log.debug("trace lookup through the store unavailable (%s); search_traces", exc)
        return None


# --- trace export (tracking/export.py) ---------------------------------------------------------
# MLflow's exporter (mlflow.tracing.export.mlflow_v3) puts two tasks per ended trace on its
# async queue: `_log_spans` (incremental spans) and `_log_trace` (the whole trace). Public
# fallback for all three: MLflow's own export (no swap).

def export_task_kind(task: Any) -> str:
    """"spans" (an incremental span export), "trace" (a whole trace with no prompts to link
    and no attachments: safe to write in a batch) or "other"."""
    name = getattr(getattr(task, "handler", None), "__name__", "")
    args = tuple(getattr(task, "args", ()) or ())
    if name == "_log_spans":
        return "spans"
    if name == "_log_trace" and args and not any(args[1:3]):
        trace = args[0]
        spans = getattr(getattr(trace, "data", None), "spans", None)
        if spans is not None and not any(getattr(s, "_attachments", None) for s in spans):
            return "trace"
    return "other"


def swap_export_queue(make: Any) -> Any:
    """Put `make(mlflow_queue, tracing_client)` in place of the active MLflow trace
    exporter's async queue; returns it, or None when the exporter is not as expected."""
    try:
        from mlflow.tracing.provider import _get_trace_exporter, _get_tracer

        exporter = _get_trace_exporter()
        if exporter is None:  # the tracer provider is set up lazily: do it now
            _get_tracer(__name__)
            exporter = _get_trace_exporter()
        inner = getattr(exporter, "_async_queue", None)
        client = getattr(exporter, "_client", None)
        if inner is None or client is None or not hasattr(inner, "put") \
                or not hasattr(client, "start_trace") or not hasattr(client, "log_spans"):
            return None
        if getattr(inner, "inner", None) is not None:  # already ours
            return inner
        queue = make(inner, client)
        exporter._async_queue = queue
        return queue
    except Exception as exc:  # noqa: BLE001 - MLflow's own export
        log.debug("trace export not batched (%s)", exc)
        return None


def export_queue_is(queue: Any) -> bool:
    """Whether `queue` is the active exporter's queue (a new tracer provider makes a new one)."""
    try:
        from mlflow.tracing.provider import _get_trace_exporter

        return getattr(_get_trace_exporter(), "_async_queue", None) is queue
    except Exception:  # noqa: BLE001
        return False


def add_trace_size_stats(trace: Any) -> None:
    """The size metadata MLflow's exporter adds to a trace before writing it."""
    try:
        from mlflow.tracing.utils import add_size_stats_to_trace_metadata

        add_size_stats_to_trace_metadata(trace)
    except Exception as exc:  # noqa: BLE001 - metadata only
        log.debug("trace size stats not added (%s)", exc)


def insert_traces(client: Any, traces: list[Any]) -> bool:
    """Create the rows of new traces (info, tags, metadata) in ONE transaction on a local
    SQL store; False to fall back to one `start_trace` per trace (public store API).

    Mirrors SqlAlchemyStore.start_trace for a trace not in the store yet (its fast path),
    minus its per-trace commit and experiment lookup; traces with assessments, a store with
    trace rollups or workspaces, or any surprise: False, nothing written.
    """
    try:
        from sqlalchemy import insert

        from mlflow.entities.lifecycle_stage import LifecycleStage
        from mlflow.store.tracking.dbmodels.models import (
            SqlTraceInfo,
            SqlTraceMetadata,
            SqlTraceTag,
        )
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.store.tracking.utils.sql_trace_rollups import rollups_enabled
        from mlflow.store.tracking.utils.trace_analytics import (
            PROMOTED_TRACE_METADATA_KEYS,
            analytics_columns_from_metadata,
            validate_trace_name,
        )
        from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey

        store = getattr(client, "store", None)
        if type(store) is not SqlAlchemyStore or rollups_enabled() \
                or any(t.info.assessments for t in traces):
            return False
        experiments: dict[str, Any] = {}
        rows, tags, metas = [], [], []
        for trace in traces:
            info = trace.info
            exp = experiments.get(info.experiment_id)
            if exp is None:
                exp = experiments[info.experiment_id] = store.get_experiment(info.experiment_id)
                if exp.lifecycle_stage != LifecycleStage.ACTIVE:
                    return False
            metadata = dict(info.trace_metadata.items())
            row = SqlTraceInfo(
                request_id=info.trace_id, experiment_id=info.experiment_id,
                timestamp_ms=info.request_time, execution_time_ms=info.execution_duration,
                status=info.state.value, client_request_id=info.client_request_id,
                request_preview=info.request_preview, response_preview=info.response_preview,
                trace_name=validate_trace_name(info.tags.get(TraceTagKey.TRACE_NAME)),
                **analytics_columns_from_metadata(metadata))
            rows.append(row)
            tags += [{"request_id": info.trace_id, "key": k, "value": v}
                     for k, v in info.tags.items() if k != TraceTagKey.TRACE_NAME]
            loc = store._get_trace_artifact_location_tag(exp, info.trace_id)
            tags.append({"request_id": info.trace_id, "key": loc.key, "value": loc.value})
            for key in PROMOTED_TRACE_METADATA_KEYS:
                metadata.pop(key, None)
            metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
            metas += [{"request_id": info.trace_id, "key": k, "value": v}
                      for k, v in sorted(metadata.items())]
        # columns the ORM would leave to the database when unset (server defaults) stay unset
        columns = [c.key for c in SqlTraceInfo.__table__.columns
                   if c.server_default is None or any(getattr(r, c.key) is not None for r in rows)]
        infos = [{k: getattr(r, k) for k in columns} for r in rows]
        with store.ManagedSessionMaker(read_only=False) as session:
            session.execute(insert(SqlTraceInfo.__table__), infos)
            if tags:
                session.execute(insert(SqlTraceTag.__table__), tags)
            if metas:
                session.execute(insert(SqlTraceMetadata.__table__), metas)
        return True
    except Exception as exc:  # noqa: BLE001 - any surprise (a row already there): public API
        log.debug("bulk trace insert unavailable (%s); one start_trace per trace", exc)
        return False

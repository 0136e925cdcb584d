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
  per assessment (~25 ms each; a 906-case run has ~10,000) (public: `mlflow.log_assessment`).
- `SOURCE_RUN`, `CHAT_USAGE`, `MODEL`: reserved trace metadata / span attribute keys that
  link a trace to its run and show token usage and model in the UI (public: a span opened
  inside an active run is linked to it; MLflow's autolog sets usage).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("nova_mlflow")

try:  # reserved keys; their values are fixed strings in MLflow 3
    from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey

    SOURCE_RUN: str = TraceMetadataKey.SOURCE_RUN
    CHAT_USAGE: str = SpanAttributeKey.CHAT_USAGE
    MODEL: str = SpanAttributeKey.MODEL
except (ImportError, AttributeError):  # pragma: no cover - an MLflow that moved them
    SOURCE_RUN, CHAT_USAGE, MODEL = "mlflow.sourceRun", "mlflow.chat.tokenUsage", "mlflow.llm.model"


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


def insert_assessments(entities: list[Any]) -> bool:
    """Insert assessments in one transaction on a local SQL store; False to fall back.

    Mirrors SqlAlchemyStore.create_assessment minus its per-row commit (the assessment's
    experiment id and trace timestamp are copied from the trace row, as it does).
    """
    try:
        from mlflow.store.tracking.dbmodels.models import SqlAssessments, SqlTraceInfo
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.store.tracking.utils.sql_trace_rollups import rollups_enabled
        from mlflow.tracking._tracking_service.utils import _get_store

        store = _get_store()
        if not isinstance(store, SqlAlchemyStore) or rollups_enabled():
            return False
        ids = sorted({e.trace_id for e in entities})
        with store.ManagedSessionMaker() as session:
            rows = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                rows.update({r.request_id: r for r in session.query(SqlTraceInfo).filter(
                    SqlTraceInfo.request_id.in_(chunk))})
            missing = [t for t in ids if t not in rows]
            if missing:
                log.warning("%d trace(s) not in the store; their assessments are skipped",
                            len(missing))
            for e in entities:
                info = rows.get(e.trace_id)
                if info is None:
                    continue
                sql = SqlAssessments.from_mlflow_entity(e)
                sql.experiment_id = info.experiment_id
                sql.trace_timestamp_ms = info.timestamp_ms
                session.add(sql)
        return True
    except Exception as exc:  # noqa: BLE001 - any surprise: the public API
        log.debug("bulk assessment insert unavailable (%s); using the public API", exc)
        return False

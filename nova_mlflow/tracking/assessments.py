"""Per-case expectations and feedback on a run's traces (the GenAI review's columns).

After scoring, every traced (case, task) gets its ground truth as expectations and its
per-case scores as feedback, both read from the rows of its task's per-case table through
scoring.feedback (the same rows the tables, scorers, compare and gate read). Each names the
run it belongs to (metadata `mlflow.assessment.sourceRunId`): a cached answer's trace is
shared by every run that used the answer (tracking/linking.py), each with its own scores.

`log_assessments` first flushes MLflow's export queue (an assessment on a not-yet-exported
trace fails with "Trace with ID ... not found"), then writes every assessment of the run in
one transaction on a local SQL store (_compat.insert_assessments), else through the public
`mlflow.log_assessment` from a thread pool (a tracking server).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import AssessmentSource, Expectation, Feedback

from nova_mlflow.schemas import Case, Task
from nova_mlflow.scoring.feedback import FeedbackMap, expectations_for, feedback_for
from nova_mlflow.secrets import redact
from nova_mlflow.tracking import _compat

SOURCE = AssessmentSource(source_type="CODE", source_id="nova_mlflow")


@dataclass
class CaseAssessments:
    """Everything logged onto one case's trace after scoring."""

    trace_id: str
    expectations: dict[str, Any]
    feedback: dict[str, tuple[Any, str | None]] = field(default_factory=dict)


def case_assessments(trace_ids: Mapping[tuple[str, Task], str], scores: Any,
                     cases: Sequence[Case]) -> list[CaseAssessments]:
    """Expectations + feedback per traced (case, task) of a scored run."""
    by_name = {c.filename: c for c in cases}
    items: list[CaseAssessments] = []
    for task, ts in scores.tasks.items():
        for row in ts.table.to_dict(orient="records"):
            tid = trace_ids.get((row["filename"], task))
            case = by_name.get(row["filename"])
            if tid is None or case is None:
                continue
            items.append(CaseAssessments(tid, expectations_for(case, task),
                                         feedback_for(task, row)))
    return items


def flush() -> None:
    """Wait until every trace of this process is in the store (assessments need them there)."""
    mlflow.flush_trace_async_logging()


def _entities(item: CaseAssessments, run_id: str | None) -> list[Any]:
    """Expectations and feedback of one case; each names `run_id` (the run it belongs to:
    a trace linked to several runs carries each run's own, told apart by the UI)."""
    meta = {_compat.ASSESSMENT_RUN: run_id} if run_id else None
    out: list[Any] = []
    for name, value in item.expectations.items():
        out.append(Expectation(name=name, value=value, source=SOURCE, trace_id=item.trace_id,
                               metadata=meta))
    for name, (value, rationale) in item.feedback.items():
        out.append(Feedback(name=name, value=value, source=SOURCE, trace_id=item.trace_id,
                            rationale=redact(rationale) if rationale else None, metadata=meta))
    return out


def log_case_assessments(trace_id: str, expectations: Mapping[str, Any],
                         feedback: FeedbackMap) -> None:
    """One case through the public API (flushes first: the trace must be in the store)."""
    flush()
    for name, value in expectations.items():
        mlflow.log_expectation(trace_id=trace_id, name=name, value=value, source=SOURCE)
    for name, (value, rationale) in feedback.items():
        mlflow.log_feedback(trace_id=trace_id, name=name, value=value, source=SOURCE,
                            rationale=redact(rationale) if rationale else None)


def log_assessments(items: Iterable[CaseAssessments], run_id: str | None = None) -> int:
    """All cases of a run: flush, then one transaction (sqlite) or a thread pool (server)."""
    entities = [e for item in items for e in _entities(item, run_id)]
    if not entities:
        return 0
    flush()
    if _compat.insert_assessments(entities):
        return len(entities)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda a: mlflow.log_assessment(a.trace_id, a), entities))
    return len(entities)

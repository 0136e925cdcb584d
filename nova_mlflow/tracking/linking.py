"""A cached answer keeps the trace of the call that produced it: linked to every run using it.

Why: a cached re-run used to log a trace of its own for every cached answer (~20 ms each on
sqlite, 2,718 per NOVA run) only so that its Traces tab listed every case. MLflow links an
existing trace to a run (`MlflowClient.link_traces_to_run`, at most 100 ids a call), and the
run's Traces tab and `search_traces(run_id=...)` list linked traces with the run's own.

How:
- The response cache keeps the trace id of the call with each response (calls/store.py).
  During the calls a cache hit naming a trace gets a `LinkedCall` (no span, no export): the
  run's trace for that case is the original one.
- After the calls, `settle` asks the store once per 500 ids which of those traces are in
  this run's experiment and belong to the same case (tags nova.filename and nova.task), links
  those to the run, 100 ids per call, and logs a trace anew (tag nova.cached=true, as before)
  for every other one: a trace that is gone (another tracking store, a deleted experiment or
  trace), in another experiment (a run's Traces tab lists its experiment's traces only), or
  of another case with the same content. The new trace id is returned so the answer record
  and the response cache name it.
- Scores: each run's expectations and feedback on a trace carry the run's id in the
  assessment metadata key MLflow's own `genai.evaluate` writes
  (`mlflow.assessment.sourceRunId`, tracking/assessments.py); the UI's run view shows a
  trace with only that run's assessments (and unattributed ones), `Assessment.run_id` reads
  it back, and deleting a run deletes its assessments, not the trace. So a trace shared by
  several runs shows each run its own scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient

from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.tracking import _compat

log = logging.getLogger("nova_mlflow")

LINK_BATCH = 100  # MlflowClient.link_traces_to_run takes at most 100 ids a call
LOOKUP_BATCH = 500


@dataclass
class LinkedCall:
    """A cache hit's stand-in for a span: the original trace id, and what is needed to log
    a trace anew for the case if that trace cannot be linked."""

    trace_id: str
    case: Case
    task: Task
    inputs: dict[str, Any]
    answer: Answer | None = None
    linked = True  # read by calls/jobs.py: the answer waits until the trace is settled

    def attempt_failed(self, *args: Any) -> None:  # a cache hit makes no attempt
        return None

    def finish(self, answer: Answer | None) -> None:
        self.answer = answer


def trace_cases(trace_ids: list[str], experiment_id: str) -> dict[str, tuple[str, str]]:
    """{trace id: (nova.filename, nova.task)} of those traces found in the experiment."""
    fast = _compat.trace_cases(trace_ids, experiment_id)
    if fast is not None:
        return fast
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(trace_ids), LOOKUP_BATCH):
        chunk = trace_ids[i:i + LOOKUP_BATCH]
        quoted = ", ".join(f"'{t}'" for t in chunk if "'" not in t)
        found = mlflow.search_traces(locations=[experiment_id], include_spans=False,
                                     filter_string=f"trace.request_id IN ({quoted})",
                                     max_results=len(chunk), return_type="list")
        for t in found:
            out[t.info.trace_id] = (t.info.tags.get("nova.filename", ""),
                                    t.info.tags.get("nova.task", ""))
    return out


def settle(tracer: Any) -> dict[tuple[str, Task], str]:
    """Link the tracer's pending cache-hit traces to its run; log the rest anew.

    Returns {(filename, task): new trace id} for the cases traced anew; those whose trace
    was not found at all (not merely another case's) are also put in `tracer.gone`. Never
    raises: a failure to look up or link falls back to logging the traces anew.
    """
    pending: list[LinkedCall] = tracer.pending_links
    tracer.pending_links = []
    if not pending:
        return {}
    ok: list[LinkedCall] = []
    found: dict[str, tuple[str, str]] = {}
    t0 = time.perf_counter()
    try:
        found = trace_cases([c.trace_id for c in pending], tracer.experiment_id)
    except Exception as exc:  # noqa: BLE001 - tracing never costs an answer: log anew
        log.warning("could not look up the traces of cached answers (%s); logging them anew",
                    exc)
    candidates = [c for c in pending
                  if found.get(c.trace_id) == (c.case.filename, c.task.value)]
    t1 = time.perf_counter()
    client = MlflowClient()
    for i in range(0, len(candidates), LINK_BATCH):
        batch = candidates[i:i + LINK_BATCH]
        try:
            client.link_traces_to_run([c.trace_id for c in batch], tracer.run_id)
            ok += batch
        except Exception as exc:  # noqa: BLE001 - these are logged anew below
            log.warning("could not link %d traces of cached answers (%s); logging them anew",
                        len(batch), exc)
    tracer.linked.extend(c.trace_id for c in ok)
    linked = {id(c) for c in ok}
    relogged: dict[tuple[str, Task], str] = {}
    for c in pending:
        if id(c) in linked:
            continue
        key = (c.case.filename, c.task)
        tracer.trace_ids.pop(key, None)
        if c.trace_id not in found:
            tracer.gone.add(key)
        with tracer.relog(c.case, c.task, c.inputs) as call:
            if call is not None:
                call.finish(c.answer)
                relogged[key] = call.trace_id
    if ok or relogged:
        log.info("traces of %d cached answers linked to the run, %d logged anew (lookup "
                 "%.2f s, links %.2f s)", len(ok), len(relogged), t1 - t0,
                 time.perf_counter() - t1)
    return relogged

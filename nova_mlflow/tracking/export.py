"""Trace export that keeps up with the calls: ended traces written in batches (SQL stores).

Why: MLflow's exporter writes each ended trace in two store transactions, in the order that
costs most on a SQL store: `log_spans` first (which creates the trace row), then
`start_trace`, which then takes its "trace already exists" path (a rollback and a merge).
Measured on sqlite on this project's 2-core machine: ~35-40 ms per trace with one export
thread, i.e. ~25 traces/s, while a 906-case run at concurrency 32 ends ~64 traces/s; the
backlog then overflows MLflow's export queue (1,000 tasks), which drops traces (before this
module: 300-430 of 2,718 traces of a live run, half of a cached re-run's, lost).

What this does instead, while a run traces its calls on a local SQL store: every ended trace
MLflow hands to its export queue is kept, and a writer thread writes them `BATCH` at a time
through the same store calls in the cheap order: `start_trace` per trace (a new row: the
fast path), then ONE `log_spans` for the spans of the whole batch (~8-9 ms per trace in
all; docs in BENCHMARKS.md "tracing-export"). The spans' own incremental export is skipped
(each trace's spans are in its full-trace task). Traces that carry prompts to link or
attachments, and every other task, go to MLflow's own queue unchanged. `flush` waits for the
writer, then MLflow's queue. A tracking server keeps MLflow's exporter: its export threads
(MLflow's default, 10) run in parallel against the server.

The swap of MLflow's queue is an internal (tracking/_compat.py: `swap_export_queue`); when
it is unavailable, MLflow's own export runs, with a queue large enough to drop nothing.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict
from typing import Any

from nova_mlflow.tracking import _compat

log = logging.getLogger("nova_mlflow")

BATCH = 100  # traces per log_spans call
INTERVAL_S = 0.25  # longest a trace waits for its batch to fill


class BatchedExport:
    """Stands in for MLflow's async export queue (`put`, `flush`, `is_active`)."""

    def __init__(self, inner: Any, client: Any) -> None:
        self.inner = inner  # MLflow's own queue: everything this does not batch goes there
        self.client = client  # MLflow's TracingClient (start_trace, log_spans)
        self._buf: list[Any] = []
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.written = 0
        self.failed = 0
        self.seconds = 0.0  # writer time
        self._thread = threading.Thread(target=self._loop, name="nova-trace-writer",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- the queue interface MLflow's exporter calls ---------------------------------------
    def put(self, task: Any) -> None:
        kind = _compat.export_task_kind(task)
        if kind == "spans":
            return  # the trace's full-trace task follows, with these spans
        if kind == "trace":
            with self._cond:
                if not self._closed:
                    self._buf.append(task.args[0])
                    if len(self._buf) >= BATCH:
                        self._cond.notify_all()
                    return
        self.inner.put(task)

    def is_active(self) -> bool:
        return not self._closed

    def flush(self, terminate: bool = False) -> None:
        """Write every trace handed over so far, then flush MLflow's own queue."""
        with self._cond:
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._buf and not self._busy)
        self.inner.flush(terminate=terminate)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- the writer ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: len(self._buf) >= BATCH or self._closed,
                                    timeout=INTERVAL_S)
                if self._closed and not self._buf:
                    return
                batch, self._buf = self._buf[:BATCH], self._buf[BATCH:]
                self._busy = bool(batch)
            if batch:
                t0 = time.perf_counter()
                try:
                    self._write(batch)
                finally:
                    self.seconds += time.perf_counter() - t0
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _write(self, traces: list[Any]) -> None:
        """The traces' rows (one transaction, else start_trace for each), then the spans of
        all of them in one log_spans call."""
        for trace in traces:
            _compat.add_trace_size_stats(trace)
        started = traces if _compat.insert_traces(self.client, traces) else []
        for trace in traces if not started else ():
            try:
                self.client.start_trace(trace.info)
                started.append(trace)
            except Exception as exc:  # noqa: BLE001 - as MLflow's exporter: warn, go on
                self.failed += 1
                log.warning("a trace could not be written (%s)", exc)
        by_experiment: dict[str, list[Any]] = defaultdict(list)
        for trace in started:
            by_experiment[trace.info.experiment_id].extend(trace.data.spans)
        for experiment_id, spans in by_experiment.items():
            try:
                self.client.log_spans(experiment_id, spans)
            except Exception as exc:  # noqa: BLE001 - one trace at a time, then give up
                log.debug("batched span write failed (%s); one trace at a time", exc)
                self._spans_one_by_one(experiment_id, spans)
        self.written += len(started)

    def _spans_one_by_one(self, experiment_id: str, spans: list[Any]) -> None:
        by_trace: dict[str, list[Any]] = defaultdict(list)
        for s in spans:
            by_trace[s.trace_id].append(s)
        for trace_id, own in by_trace.items():
            try:
                self.client.log_spans(experiment_id, own)
            except Exception as exc:  # noqa: BLE001
                self.failed += 1
                log.warning("the spans of trace %s could not be written (%s)", trace_id, exc)


_ACTIVE: BatchedExport | None = None


def batch_exports(tracking_uri: str) -> BatchedExport | None:
    """Batch trace exports on a local SQL store from now on in this process (idempotent);
    None if the store is a server or MLflow's export queue cannot be swapped."""
    global _ACTIVE
    if _ACTIVE is not None and _ACTIVE.is_active() and _compat.export_queue_is(_ACTIVE):
        return _ACTIVE
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "mysql", "mssql"):
        return None
    swapped = _compat.swap_export_queue(BatchedExport)
    _ACTIVE = swapped
    return swapped

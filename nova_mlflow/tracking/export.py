"""Trace export that keeps up with the calls: ended traces written in batches.

Why: MLflow's exporter writes each ended trace in two store transactions, in the order that
costs most on a SQL store: `log_spans` first (which creates the trace row), then
`start_trace`, which then takes its "trace already exists" path (a rollback and a merge).
Measured on this project's 2-core machine (BENCHMARKS.md, "Trace export"): ~20 traces/s
on sqlite with one export thread (27/s with 4: sqlite takes one writer at a time), while a
906-case run at concurrency 32 and 0.5 s per call ends ~64 traces/s; the backlog then
overflowed MLflow's export queue (1,000 tasks), which drops traces (before this module:
300-430 of 2,718 traces of a live run, half of a cached re-run's, lost).

What this does instead: every ended trace MLflow hands to its export queue is kept, and a
writer thread writes them `BATCH` at a time, in the cheap order: the traces' rows first
(on a local SQL store all of them in one transaction, `_compat.insert_traces`, the rows
`start_trace` writes for a new trace; on a tracking server one `start_trace` request per
trace, `SERVER_PARALLEL` in flight), then ONE `log_spans` call for the spans of the whole
batch (MLflow's own code: one transaction; over HTTP one OTLP request). sqlite: 64 traces/s,
as fast as they were offered, 0.2 s to write the last batch after the last call. Server +
PostgreSQL on the same 2 cores: 31 traces/s against MLflow's 26 (10 threads); the server's
own work per trace is the limit there. The spans' incremental export is skipped (each
trace's spans come again in its full-trace task). Traces that carry prompts to link or
attachments, and every other task, go to MLflow's own queue unchanged. `flush` (called by
`mlflow.flush_trace_async_logging`) waits for the writer, then MLflow's queue.

Writing a case's trace once, with its assessments, after scoring (start_trace takes them)
would save the separate assessment insert (~1.3 s for a 906-case run's 15,372) but write
every trace after the calls instead of during them: slower end to end.

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
SERVER_PARALLEL = 8  # start_trace requests in flight to a tracking server
INTERVAL_S = 0.25  # longest a trace waits for its batch to fill


class BatchedExport:
    """Stands in for MLflow's async export queue (`put`, `flush`, `is_active`)."""

    def __init__(self, inner: Any, client: Any, parallel: int = 1) -> None:
        self.inner = inner  # MLflow's own queue: everything this does not batch goes there
        self.client = client  # MLflow's TracingClient (start_trace, log_spans)
        self.parallel = parallel  # start_trace calls in flight when rows cannot be bulk-written
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
        if not started:
            started = self._start_each(traces)
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

    def _start_each(self, traces: list[Any]) -> list[Any]:
        """One start_trace per trace (a tracking server: `parallel` requests in flight)."""
        def start(trace: Any) -> Any:
            try:
                self.client.start_trace(trace.info)
                return trace
            except Exception as exc:  # noqa: BLE001 - as MLflow's exporter: warn, go on
                self.failed += 1
                log.warning("a trace could not be written (%s)", exc)
                return None

        if self.parallel > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.parallel, thread_name_prefix="nova-trace") as pool:
                done = list(pool.map(start, traces))
        else:
            done = [start(t) for t in traces]
        return [t for t in done if t is not None]

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
    """Batch trace exports from now on in this process (idempotent); None for a store that
    is neither a SQL database nor an MLflow server, or when MLflow's queue cannot be swapped."""
    global _ACTIVE
    if _ACTIVE is not None and _ACTIVE.is_active() and _compat.export_queue_is(_ACTIVE):
        return _ACTIVE
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("sqlite", "postgresql", "mysql", "mssql"):
        make = BatchedExport
    elif scheme in ("http", "https"):  # a tracking server: its start_trace calls in parallel
        def make(inner: Any, client: Any) -> BatchedExport:
            return BatchedExport(inner, client, parallel=SERVER_PARALLEL)
    else:
        return None
    swapped = _compat.swap_export_queue(make)
    _ACTIVE = swapped
    return swapped

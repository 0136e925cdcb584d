"""Per-call MLflow traces and per-case assessments, for the GenAI "Evaluation runs" review.

Why: MLflow 3's GenAI UI compares runs case by case when each case is a trace carrying its
ground truth as expectations and its scores as feedback. So every provider call of a run is
one trace (one root span, no children: an export costs one database write per span), linked
to the run through the trace's `mlflow.sourceRun` metadata.

What a span holds: inputs (case, task, prompt name + version, the rendered text sent, the
image as sha256 + size + the dataset path, never its bytes), outputs (raw answer, parsed
prediction), token usage, latency, status, and one `attempt_failed` event per failed attempt
(with its HTTP status). No API key: the rendered prompt holds none, and every error text
goes through `secrets.redact` again here. The openai/gemini autolog integrations are not
used: they record the request as sent, i.e. the base64 image bytes.

Request preview: the UI's "compare to <run>" switch pairs the rows of two runs by the trace's
request preview (MLflow 3.17's evaluation review table), which MLflow otherwise fills with the
root span's inputs; those hold the prompt text, so a case's v1 and v2 traces never paired. So
every trace's preview is set to its case key ({"filename", "case_id", "task"}; a judge call's:
{"task", "prediction", "truth"}); the span's inputs keep everything.

Judge calls (`--judge MODEL`): each provider call of the LLM judge is a trace of its own, linked
to the run the same way, named `nova.diagnosis-judge` and tagged `nova.role=judge` (a model
call's trace is tagged `nova.role=model`); inputs: the cases whose answers produced the
(prediction, truth) pair (case id, filename, the diagnosis trace id of the case), the judge
model, the judge prompt name + version and the text sent; outputs: the raw answer and the
parsed verdict (match + reason); token usage, latency, attempts and failed attempts as above.
A verdict read from the verdict cache, or a pair equal after normalisation, makes no call and
so has no trace (its reason is the rationale of the case's top1/top5 feedback). Judge traces
carry no assessments.

Cache hits: a cached answer's trace is the trace of the call that produced it, linked to this
run (`linked_span`, settled after the calls by tracking/linking.py); each run's assessments on
it carry the run's id, so every run shows the same per-case view with its own scores. Only a
cached answer with no usable trace (cached untraced, or its trace gone or in another
experiment) gets a trace of its own, tagged `nova.cached=true`, with no attempt events.

Export is asynchronous (MLflow's queue) and happens while later calls are in flight; on
sqlite the queue gets one writer thread unless MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS is set
(sqlite takes one writer at a time, more threads only contend for its lock). After
scoring, `log_assessments` flushes that queue (an assessment on a not-yet-exported trace
fails with "Trace with ID ... not found") and writes all assessments of the run in ONE
sqlite transaction when the store is the local SQL store (instead of one transaction per
assessment, ~25 ms each measured on this busy 2-core machine); other stores (a tracking
server) get the public API from a thread pool.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.entities import SpanEvent, SpanType

from nova_mlflow.schemas import Frame
from nova_mlflow.parsing import parse_answer
from nova_mlflow.providers.base import Request
from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.secrets import redact
from nova_mlflow.tracking import _compat
from nova_mlflow.tracking.export import batch_exports

if TYPE_CHECKING:  # types only: the tracer is handed these, it does not make them
    from nova_mlflow.calls.runner import Outcome
    from nova_mlflow.metrics.matching import Verdict
    from nova_mlflow.prompts import Prompt

log = logging.getLogger("nova_mlflow")

SPAN_NAME = "nova.{task}"
JUDGE_TASK = "diagnosis-judge"  # the task name of a judge call's trace (tag nova.task)
ROLE_TAG = "nova.role"  # "model" or "judge"
EXPORT_WORKERS_VAR = "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS"
QUEUE_SIZE_VAR = "MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE"


class _RootSpan:
    """A provider call's root span; the runner reports each failed attempt as an event."""

    def __init__(self, span: Any) -> None:
        self._span = span
        self.trace_id: str = span.trace_id

    def attempt_failed(self, attempt: int, status: int | None, error: str, retryable: bool,
                       delay_s: float | None) -> None:
        """A span event per failed attempt (the final one too), with its HTTP status."""
        try:
            self._event(attempt, status, error, retryable, delay_s)
        except Exception as exc:  # noqa: BLE001 - tracing must never cost an answer
            log.debug("could not record an attempt on a trace span: %s", exc)

    def _event(self, attempt: int, status: int | None, error: str, retryable: bool,
               delay_s: float | None) -> None:
        attrs: dict[str, Any] = {"attempt": attempt, "status_code": status or 0,
                                 "error": redact(error) or "", "retryable": retryable}
        if delay_s is not None:
            attrs["retry_in_s"] = round(delay_s, 3)
        self._span.add_event(SpanEvent("attempt_failed", attributes=attrs))


class CallSpan(_RootSpan):
    """One model call's root span; the runner reports failed attempts and the answer."""

    def __init__(self, span: Any, frame: Frame | None, case: Case) -> None:
        super().__init__(span)
        self._frame = frame
        self._case = case

    def finish(self, answer: Answer | None) -> None:
        """Outputs, usage and status from the answer record (None: the provider had none)."""
        try:
            self._finish(answer)
        except Exception as exc:  # noqa: BLE001 - tracing must never cost an answer
            log.debug("could not record an answer on a trace span: %s", exc)

    def _finish(self, answer: Answer | None) -> None:
        span = self._span
        if answer is None:
            span.set_attributes({"nova.status": "missing"})
            span.set_outputs({"text": None, "status": "missing"})
            span.set_status("ERROR")
            return
        outputs: dict[str, Any] = {"text": answer.text, "status": answer.status}
        if answer.frame:
            outputs["frame"] = answer.frame
        if answer.status == "answered":
            outputs["parsed"] = _parsed(answer, self._frame, self._case)
        if answer.error:
            outputs["error"] = redact(answer.error)
        span.set_outputs(outputs)
        attrs: dict[str, Any] = {"nova.status": answer.status, "nova.cached": bool(answer.cached),
                                 "nova.attempts": answer.attempts or 0,
                                 "nova.latency_s": answer.latency_s or 0.0}
        if answer.input_tokens is not None or answer.output_tokens is not None:
            i, o = answer.input_tokens or 0, answer.output_tokens or 0
            attrs[_compat.CHAT_USAGE] = {"input_tokens": i, "output_tokens": o,
                                                  "total_tokens": i + o}
        span.set_attributes(attrs)
        if answer.status == "api_error":
            span.set_status("ERROR")


def call_inputs(case: Case, task: Task, request: Request, model: str,
                prompts: Mapping[Task, str]) -> dict[str, Any]:
    """A model call's span inputs: the case, the prompt sent, the image as a reference."""
    inputs: dict[str, Any] = {"filename": case.filename, "case_id": case.case_id,
                              "task": task.value, "model": model,
                              "prompt": {"name": prompts.get(task, ""),
                                         "version": request.prompt_version},
                              "text": request.prompt}
    if request.image_png is not None:
        w, h = request.image_size or (case.image_width, case.image_height)
        inputs["image"] = {"sha256": request.image_sha256, "width": w, "height": h,
                           "path": str(case.image_path)}
    return inputs


def _recording(span: Any) -> bool:
    """False for the no-op span MLflow hands out when tracing is disabled or failed."""
    return bool(getattr(span, "trace_id", None)) and span.trace_id != "MLFLOW_NO_OP_SPAN_TRACE_ID"


def _parsed(answer: Answer, frame: Frame | None, case: Case) -> Any:
    """The prediction as scoring will read it (or the parse error), for the trace's outputs."""
    size = (case.image_width, case.image_height)
    p = parse_answer(answer.task, answer.text, frame=frame or Frame.pixel_xyxy, sent=size,
                     original=size)
    if p.prediction is None:
        return {"error": p.error}
    return p.prediction.model_dump(mode="json", exclude={"schema_version"})


class JudgeSpan(_RootSpan):
    """One judge call's root span: failed attempts as events, then the verdict it gave."""

    def finish_verdict(self, status: str, verdict: Verdict, outcome: Outcome) -> None:
        """`status`: answered, unreadable (no verdict in the answer) or api_error; the judge
        call's text, tokens, latency, attempts and error come from its `outcome`."""
        try:
            self._finish_verdict(status, verdict, outcome)
        except Exception as exc:  # noqa: BLE001 - tracing must never cost a verdict
            log.debug("could not record a verdict on a trace span: %s", exc)

    def _finish_verdict(self, status: str, verdict: Verdict, outcome: Outcome) -> None:
        span, resp = self._span, outcome.response
        outputs: dict[str, Any] = {"text": resp.text if resp is not None else None,
                                   "status": status, "verdict": {
                                       "match": verdict.match,
                                       "reason": redact(verdict.reason) or ""}}
        if outcome.error:
            outputs["error"] = redact(outcome.error)
        span.set_outputs(outputs)
        attrs: dict[str, Any] = {"nova.status": status, "nova.verdict": verdict.match,
                                 "nova.attempts": outcome.attempts or 0,
                                 "nova.latency_s": outcome.latency_s or 0.0}
        if resp is not None and (resp.input_tokens is not None or resp.output_tokens is not None):
            i, o = resp.input_tokens or 0, resp.output_tokens or 0
            attrs[_compat.CHAT_USAGE] = dict(input_tokens=i, output_tokens=o, total_tokens=i + o)
        span.set_attributes(attrs)
        if status == "api_error":
            span.set_status("ERROR")


class Tracer:
    """Opens one trace per provider call of a run and remembers it per (filename, task).

    The LLM judge's calls (`judge_span`) get traces too, listed in `judge_trace_ids`.
    """

    def __init__(self, run_id: str, experiment_id: str, model: str,
                 prompts: Mapping[Task, str] | None = None, frame: Frame | str | None = None) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.model = model
        self.prompts = {t: name for t, name in (prompts or {}).items()}
        self.frame = Frame(frame) if frame else None
        self.trace_ids: dict[tuple[str, Task], str] = {}  # every model call's: own or linked
        self.own: set[str] = set()  # the model-call traces this run logged itself
        self.pending_links: list[Any] = []  # linking.LinkedCall of cache hits, until settled
        self._linking: set[str] = set()  # their trace ids
        self.linked: list[str] = []  # traces of other runs' calls linked to this run
        self.gone: set[tuple[str, Task]] = set()  # cache hits whose trace was not found
        self.judge_trace_ids: list[str] = []
        self.seconds = 0.0  # time spent in span bookkeeping on the caller's thread
        self.link_seconds = 0.0  # time spent settling linked traces
        uri = mlflow.get_tracking_uri()
        if uri.startswith("sqlite"):
            # sqlite takes one writer at a time: MLflow's 10 export threads only contend for
            # its lock (300 traces: 25 s with 10, 14 s with 1). Read when the export queue
            # is first built; a value the user set is kept.
            os.environ.setdefault(EXPORT_WORKERS_VAR, "1")
        # MLflow drops traces once its export queue holds 1,000 tasks (two per trace): a run
        # ends traces faster than a store writes them one by one. Never drop one of ours.
        os.environ.setdefault(QUEUE_SIZE_VAR, "1000000")
        self.export = batch_exports(uri)  # batched writes on a SQL store (tracking/export.py)

    @contextmanager
    def span(self, case: Case, task: Task, request: Request, *, cached: bool = False
             ) -> Iterator[CallSpan | None]:
        """Root span around one call (or cache hit); yields None if tracing is unavailable."""
        with self._root(partial(self._open_call, case, task, request, cached), "trace") as call:
            yield call

    def _open_call(self, case: Case, task: Task, request: Request, cached: bool
                   ) -> CallSpan | None:
        return self.open_with_inputs(case, task, call_inputs(case, task, request, self.model,
                                                             self.prompts), cached)

    def open_with_inputs(self, case: Case, task: Task, inputs: dict[str, Any], cached: bool
                         ) -> CallSpan | None:
        """A model call's root span from its inputs (`call_inputs`); None if not recording."""
        span = mlflow.start_span_no_context(
            SPAN_NAME.format(task=task.value), span_type=SpanType.LLM, inputs=inputs,
            attributes={"nova.task": task.value, "nova.filename": case.filename,
                        _compat.MODEL: self.model},
            tags={"nova.task": task.value, "nova.filename": case.filename,
                  "nova.case_id": case.case_id, "nova.cached": str(cached).lower(),
                  "nova.prompt_version": inputs["prompt"]["version"], ROLE_TAG: "model"},
            metadata={_compat.SOURCE_RUN: self.run_id},
            experiment_id=self.experiment_id)
        if not _recording(span):
            return None
        call = CallSpan(span, self.frame, case)
        self.trace_ids[(case.filename, task)] = call.trace_id
        self.own.add(call.trace_id)
        _compat.set_request_preview(call.trace_id, {"filename": case.filename,
                                             "case_id": case.case_id, "task": task.value})
        return call

    @contextmanager
    def relog(self, case: Case, task: Task, inputs: dict[str, Any]) -> Iterator[CallSpan | None]:
        """A cached answer's trace logged anew (its linked trace could not be linked)."""
        with self._root(partial(self.open_with_inputs, case, task, inputs, True), "trace") as c:
            yield c

    def trace_id_of(self, filename: str, task: Task) -> str | None:
        """The trace of this run's call for (filename, task), its own or a linked one."""
        return self.trace_ids.get((filename, task))

    @contextmanager
    def linked_span(self, case: Case, task: Task, request: Request, trace_id: str
                    ) -> Iterator[Any]:
        """A cache hit whose answer came from the call traced as `trace_id`: no trace of its
        own; that trace is linked to this run by `settle_links` (tracking/linking.py)."""
        from nova_mlflow.tracking.linking import LinkedCall

        if trace_id in self.own or trace_id in self._linking:
            # already a trace of this run (two cases with one cached answer): one of its own
            with self.span(case, task, request, cached=True) as call:
                yield call
            return
        call = LinkedCall(trace_id, case, task,
                          call_inputs(case, task, request, self.model, self.prompts))
        self.trace_ids[(case.filename, task)] = trace_id
        self._linking.add(trace_id)
        self.pending_links.append(call)
        yield call

    def settle_links(self) -> dict[tuple[str, Task], str]:
        """Link the traces of this run's cache hits; {(filename, task): trace logged instead}
        for those whose trace could not be linked (see tracking/linking.py)."""
        from nova_mlflow.tracking.linking import settle

        t0 = time.perf_counter()
        try:
            return settle(self)
        finally:
            self.link_seconds += time.perf_counter() - t0

    @contextmanager
    def judge_span(self, request: Request, judge_model: str, prompt: Prompt,
                   pair: tuple[str, str], cases: Iterable[Case] = ()
                   ) -> Iterator[JudgeSpan | None]:
        """Root span around one judge call; yields None if tracing is unavailable.

        `pair`: (prediction, truth); `cases`: the cases whose answers gave this pair (the
        judge asks once per distinct pair); the first one names the trace (tags
        nova.case_id/filename).
        """
        opener = partial(self._open_judge_call, request, judge_model, prompt, pair, list(cases))
        with self._root(opener, "judge trace") as call:
            yield call

    def _open_judge_call(self, request: Request, judge_model: str, prompt: Prompt,
                         pair: tuple[str, str], cases: list[Case]) -> JudgeSpan | None:
        prediction, truth = pair
        owners = [{"case_id": c.case_id, "filename": c.filename,
                   "trace_id": self.trace_ids.get((c.filename, Task.diagnosis))}
                  for c in cases]
        first = owners[0] if owners else {"case_id": "", "filename": ""}
        inputs = {"case_id": first["case_id"], "filename": first["filename"],
                  "task": JUDGE_TASK, "role": "judge", "model": judge_model,
                  "judged_model": self.model,
                  "prompt": {"name": prompt.name, "version": prompt.version},
                  "prediction": prediction, "truth": truth, "cases": owners,
                  "text": request.prompt}
        span = mlflow.start_span_no_context(
            SPAN_NAME.format(task=JUDGE_TASK), span_type=SpanType.LLM, inputs=inputs,
            attributes={"nova.task": JUDGE_TASK, "nova.role": "judge",
                        "nova.filename": first["filename"],
                        _compat.MODEL: judge_model},
            tags={"nova.task": JUDGE_TASK, ROLE_TAG: "judge",
                  "nova.filename": first["filename"], "nova.case_id": first["case_id"],
                  "nova.n_cases": str(len(owners)), "nova.judge_model": judge_model,
                  "nova.prompt_version": prompt.version},
            metadata={_compat.SOURCE_RUN: self.run_id},
            experiment_id=self.experiment_id)
        if not _recording(span):
            return None
        call = JudgeSpan(span)
        self.judge_trace_ids.append(call.trace_id)
        _compat.set_request_preview(call.trace_id, {"task": JUDGE_TASK, "prediction": prediction,
                                             "truth": truth})
        return call

    @contextmanager
    def _root(self, open_call: Callable[[], _RootSpan | None], what: str
              ) -> Iterator[Any]:
        """Open a root span with `open_call`, yield it (None if it could not be opened: tracing
        never costs an answer or a verdict), end it after the block; time the bookkeeping."""
        t0 = time.perf_counter()
        call: _RootSpan | None = None
        try:
            call = open_call()
        except Exception as exc:  # noqa: BLE001 - tracing must never cost an answer
            log.debug("could not open a %s span: %s", what, exc)
        self.seconds += time.perf_counter() - t0
        try:
            yield call
        finally:
            self._end(call)

    def _end(self, call: _RootSpan | None) -> None:
        """End a call's root span (its trace then goes to the export queue); never raises."""
        if call is None:
            return
        t1 = time.perf_counter()
        try:
            call._span.end()
        except Exception as exc:  # noqa: BLE001 - tracing must never cost an answer
            log.debug("could not end a trace span: %s", exc)
        self.seconds += time.perf_counter() - t1

    def log_scores(self, scores: Any, cases: list[Case]) -> int:
        """Expectations + feedback of every traced case of the scored run; returns how many."""
        from nova_mlflow.tracking.assessments import case_assessments, log_assessments

        t0 = time.perf_counter()
        n = log_assessments(case_assessments(self.trace_ids, scores, cases), self.run_id)
        log.info("%d assessments on %d traces (%d linked, settled in %.1f s) logged in %.1f s "
                 "(waiting for the trace export included)", n, len(self.trace_ids),
                 len(self.linked), self.link_seconds, time.perf_counter() - t0)
        return n

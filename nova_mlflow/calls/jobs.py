"""A run's model calls: one job per (case, task) -> one Answer record, cache first.

Fresh answers are stored in the CallStore the moment they arrive (with the id of their
call's trace) and handed to `on_answer` (the run appends them to its answers file), so a run
killed at any point loses nothing and re-pays nothing.

Traces (`tracer`): every call gets a trace span. A cache hit whose stored response names the
trace of the call that produced it gets no trace of its own: that trace is linked to this run
(`tracer.linked_span`), settled after the calls (`tracer.settle_links`: a trace that is gone,
or in another experiment, is logged anew for the case and its id stored with the response);
its answer goes to `on_answer` once its trace id is settled. A cache hit with no stored trace
id (cached untraced) is traced anew and its new trace id stored, so the next re-run links it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from nova_mlflow.calls.runner import CallSession, Outcome, execute, run_sync
from nova_mlflow.calls.store import CacheKey, CallStore, response_key
from nova_mlflow.providers.base import Request, Response
from nova_mlflow.schemas import Answer, Case, Task


@dataclass(frozen=True)
class Job:
    case: Case
    task: Task


@dataclass
class ModelCalls:
    """CallHooks of a model run (see calls.runner.CallHooks)."""

    session: CallSession
    make_request: Callable[[Job], Request]
    on_answer: Callable[[Answer], None]
    store: CallStore | None
    frame: str | None
    tracer: Any
    #: cache hits of this run: (filename, task) -> (store key, trace id stored with it)
    hits: dict[tuple[str, Task], tuple[CacheKey, str | None]] = field(default_factory=dict)
    #: answers whose trace is a linked one, handed to on_answer once it is settled
    deferred: list[Answer] = field(default_factory=list)

    def request(self, job: Job) -> Request:
        return self.make_request(job)

    def _key(self, request: Request) -> CacheKey | None:
        p = self.session.provider
        if self.store is None or not getattr(p, "cacheable", True):
            return None
        return response_key(p, request)  # the endpoint is part of it

    def stored(self, job: Job, request: Request) -> Response | None:
        key = self._key(request)
        hit = self.store.get(key) if self.store is not None and key else None
        if hit is not None and key:
            self.hits[(job.case.filename, job.task)] = (key, hit.trace_id)
        return hit

    def keep(self, job: Job, request: Request, response: Response) -> None:
        key = self._key(request)
        if self.store is not None and key:
            tid = self.tracer.trace_id_of(job.case.filename, job.task) if self.tracer else None
            self.store.put(key, response, trace_id=tid)

    def span(self, job: Job, request: Request, cached: bool) -> AbstractContextManager[Any]:
        if self.tracer is None:
            return nullcontext()
        stored = self.hits.get((job.case.filename, job.task)) if cached else None
        if stored is not None and stored[1]:
            return self.tracer.linked_span(job.case, job.task, request, stored[1])
        return self.tracer.span(job.case, job.task, request, cached=cached)

    def result(self, job: Job, request: Request, outcome: Outcome, span: Any) -> Answer | None:
        if outcome.missing:
            if span is not None:
                span.finish(None)
            return None  # counted as missing by scoring
        base = dict(filename=job.case.filename, task=job.task, model=self.session.provider.model,
                    prompt_version=request.prompt_version, image_sha256=request.image_sha256,
                    image_size=request.image_size,
                    frame=self.frame if job.task is Task.localization else None,
                    latency_s=outcome.latency_s)
        if span is not None:
            base["trace_id"] = span.trace_id
        resp = outcome.response
        if resp is None:
            answer = Answer(**base, text=None, status="api_error", error=outcome.error,
                            attempts=outcome.attempts or 1)
        else:
            answer = Answer(**base, text=resp.text,
                            status="refused" if resp.refused else "answered",
                            input_tokens=resp.input_tokens, output_tokens=resp.output_tokens,
                            attempts=outcome.attempts, cached=resp.cached)
        if span is not None:
            span.finish(answer)
            if getattr(span, "linked", False):  # written once its trace is settled
                self.deferred.append(answer)
                return answer
            hit = self.hits.get((job.case.filename, job.task)) if resp and resp.cached else None
            if hit is not None and hit[1] is None and self.store is not None:
                self.store.set_trace_id(hit[0], span.trace_id)  # cached untraced: link it next time
        self.on_answer(answer)
        return answer

    def settle(self, answers: list[Answer]) -> list[Answer]:
        """Link the traces of this run's cache hits (or log them anew); write their answers."""
        if not self.deferred:
            return answers
        relogged = self.tracer.settle_links()  # (filename, task) -> the trace logged instead
        changed: dict[tuple[str, Task], Answer] = {}
        for answer in self.deferred:
            k = (answer.filename, answer.task)
            if k in relogged:
                answer = answer.model_copy(update={"trace_id": relogged[k]})
                changed[k] = answer
                if self.store is not None and k in self.hits and k in self.tracer.gone:
                    self.store.set_trace_id(self.hits[k][0], relogged[k])  # link it next time
            self.on_answer(answer)
        self.deferred.clear()
        return [changed.get((a.filename, a.task), a) for a in answers]


def run_jobs(calls: ModelCalls, jobs: Sequence[Job]) -> list[Answer]:
    """Answers of every job that got one (a case the provider has none for is left out).

    `calls.frame` is recorded on localization answers (schema v2) so they can be re-read
    later; `calls.tracer` (tracking.traces.Tracer) gives every job a trace: its own, or for a
    cache hit the linked trace of the call that produced the answer.
    """
    return calls.settle(run_sync(execute(calls.session, jobs, calls)))

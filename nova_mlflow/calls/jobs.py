"""A run's model calls: one job per (case, task) -> one Answer record, cache first.

Fresh answers are stored in the CallStore the moment they arrive and handed to `on_answer`
(the run appends them to its answers file), so a run killed at any point loses nothing and
re-pays nothing. Every call, cache hits included, can have a trace span (`tracer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
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
class _ModelCalls:
    """CallHooks of a model run (see calls.runner.CallHooks)."""

    session: CallSession
    make_request: Callable[[Job], Request]
    on_answer: Callable[[Answer], None]
    store: CallStore | None
    frame: str | None
    tracer: Any

    def request(self, job: Job) -> Request:
        return self.make_request(job)

    def _key(self, request: Request) -> CacheKey | None:
        p = self.session.provider
        if self.store is None or not getattr(p, "cacheable", True):
            return None
        return response_key(p, request)  # the endpoint is part of it

    def stored(self, job: Job, request: Request) -> Response | None:
        key = self._key(request)
        return self.store.get(key) if self.store is not None and key else None

    def keep(self, job: Job, request: Request, response: Response) -> None:
        key = self._key(request)
        if self.store is not None and key:
            self.store.put(key, response)

    def span(self, job: Job, request: Request, cached: bool) -> AbstractContextManager[Any]:
        if self.tracer is None:
            return nullcontext()
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
        self.on_answer(answer)
        return answer


def run_jobs(session: CallSession, jobs: Sequence[Job], make_request: Callable[[Job], Request],
             on_answer: Callable[[Answer], None], *, store: CallStore | None = None,
             frame: str | None = None, tracer: Any = None) -> list[Answer]:
    """Answers of every job that got one (a case the provider has none for is left out).

    `frame` is recorded on localization answers (schema v2) so they can be re-read later;
    `tracer` (tracking.traces.Tracer) opens one trace per job, cache hits included.
    """
    hooks = _ModelCalls(session, make_request, on_answer, store, frame, tracer)
    return run_sync(execute(session, jobs, hooks))

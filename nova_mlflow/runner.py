"""Runs model calls for paid APIs: cache first, bounded concurrency, rate limit, retries.

- Requests are built lazily inside the worker (an image is read only when its call starts).
- The response cache is asked first; fresh answers are stored the moment they arrive and
  handed to `on_answer` (the caller appends them to the run's answers file), so a run killed
  at any point loses nothing and re-pays nothing.
- Retries: 408/409/429/5xx, timeouts and dropped connections, with exponential backoff and
  full jitter, honouring the server's Retry-After; every SDK's own retry is switched off so
  this is the only retry loop. A call that still fails is an `api_error` answer, never a crash.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from nova_mlflow.cache import ResponseCache, request_key
from nova_mlflow.providers.base import NoAnswer, Provider, Request, Response, classify
from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.secrets import redact


@dataclass(frozen=True)
class Job:
    case: Case
    task: Task


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(6, ge=0, le=50)
    base_delay: float = Field(1.0, ge=0.0)  # seconds; doubles each attempt
    max_delay: float = Field(60.0, ge=0.0)
    timeout: float = Field(120.0, gt=0.0)  # per attempt

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full jitter (uniform 0..base*2^attempt), never less than the server's Retry-After."""
        backoff = rng.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))
        return min(self.max_delay, max(backoff, retry_after or 0.0))


class RateLimiter:
    """At most `rpm` request starts per minute, spaced evenly (no bursts against the quota)."""

    def __init__(self, rpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        await asyncio.sleep(max(0.0, start - now))


def error_text(exc: BaseException) -> str:
    """Exception summary for the answer record, with anything key-shaped removed."""
    return redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]) or ""


class AttemptObserver(Protocol):
    """What the runner tells a trace span (tracking_traces.CallSpan) about failed attempts."""

    def attempt_failed(self, attempt: int, status: int | None, error: str, retryable: bool,
                       delay_s: float | None) -> None: ...


@dataclass
class RunStats:
    requests: int = 0  # HTTP-level attempts made this run
    cache_hits: int = 0
    retries: int = 0


async def call_with_retries(provider: Provider, request: Request, policy: RetryPolicy,
                            limiter: RateLimiter, rng: random.Random,
                            stats: RunStats, span: AttemptObserver | None = None
                            ) -> tuple[Response, int]:
    """`span`, when given, gets one event per failed attempt (the last one too)."""
    attempt = 0
    while True:
        await limiter.wait()
        stats.requests += 1
        try:
            resp = await asyncio.wait_for(provider.generate(request), policy.timeout)
            return resp, attempt + 1
        except NoAnswer:
            raise
        except Exception as exc:
            info = classify(exc)
            final = not info.retryable or attempt >= policy.max_retries
            delay = None if final else policy.delay(attempt, info.retry_after, rng)
            if span is not None:
                span.attempt_failed(attempt + 1, info.status, error_text(exc), info.retryable,
                                    delay)
            if final:
                exc.attempts = attempt + 1  # type: ignore[attr-defined]
                raise
            stats.retries += 1
            await asyncio.sleep(delay or 0.0)
            attempt += 1


async def _run_all(provider: Provider, jobs: Sequence[Job], make_request: Callable[[Job], Request],
                   on_answer: Callable[[Answer], None], *, concurrency: int, progress: bool,
                   policy: RetryPolicy, rpm: float | None, cache: ResponseCache | None,
                   refresh: bool, stats: RunStats, frame: str | None,
                   tracer: Any = None) -> list[Answer]:
    sem = asyncio.Semaphore(max(1, concurrency))
    limiter = RateLimiter(rpm)
    rng = random.Random(0)
    bar = tqdm(total=len(jobs), desc=f"{provider.model}", unit="call", file=sys.stderr,
               disable=not progress, dynamic_ncols=True, mininterval=0.5,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                          "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    async def one(job: Job) -> Answer | None:
        async with sem:
            request = make_request(job)
            base = dict(filename=job.case.filename, task=job.task, model=provider.model,
                        prompt_version=request.prompt_version, image_sha256=request.image_sha256,
                        image_size=request.image_size,
                        frame=frame if job.task is Task.localization else None)
            use_cache = cache is not None and getattr(provider, "cacheable", True)
            key = request_key(provider.name, provider.model, request) if use_cache else None
            start = time.perf_counter()
            resp = cache.get(key) if cache is not None and key and not refresh else None
            attempts = 0
            # one trace per call, cache hits included (tracking_traces: re-logged, cached=True)
            with (tracer.span(job.case, job.task, request, cached=resp is not None)
                  if tracer is not None else nullcontext()) as span:
                if span is not None:
                    base["trace_id"] = span.trace_id
                try:
                    if resp is not None:
                        stats.cache_hits += 1
                    else:
                        resp, attempts = await call_with_retries(provider, request, policy,
                                                                 limiter, rng, stats, span)
                        if cache is not None and key:
                            cache.put(key, provider.name, provider.model, resp)
                    answer = Answer(**base, text=resp.text,
                                    status="refused" if resp.refused else "answered",
                                    latency_s=round(time.perf_counter() - start, 4),
                                    input_tokens=resp.input_tokens,
                                    output_tokens=resp.output_tokens,
                                    attempts=attempts, cached=resp.cached)
                except NoAnswer:
                    if span is not None:
                        span.finish(None)
                    bar.update(1)
                    return None  # counted as missing by scoring
                except Exception as exc:  # provider failures are results, never crashes
                    answer = Answer(**base, text=None, status="api_error", error=error_text(exc),
                                    latency_s=round(time.perf_counter() - start, 4),
                                    attempts=getattr(exc, "attempts", attempts or 1))
                if span is not None:
                    span.finish(answer)
            on_answer(answer)
            bar.update(1)
            if stats.retries or stats.cache_hits:
                bar.set_postfix_str(f"cached={stats.cache_hits} retries={stats.retries}",
                                    refresh=False)
            return answer

    try:
        results = await asyncio.gather(*(one(j) for j in jobs))
    finally:
        bar.close()
    return [a for a in results if a is not None]


def run_jobs(
    provider: Provider,
    jobs: Sequence[Job],
    make_request: Callable[[Job], Request],
    on_answer: Callable[[Answer], None],
    *,
    concurrency: int = 8,
    progress: bool = True,
    policy: RetryPolicy | None = None,
    rpm: float | None = None,
    cache: ResponseCache | None = None,
    refresh: bool = False,
    stats: RunStats | None = None,
    frame: str | None = None,
    tracer: Any = None,
) -> list[Answer]:
    """`frame` is recorded on localization answers (schema v2) so they can be re-read later.

    `tracer` (tracking_traces.Tracer) opens one trace per job, cache hits included.
    """
    return asyncio.run(_run_all(provider, jobs, make_request, on_answer, concurrency=concurrency,
                                progress=progress, policy=policy or RetryPolicy(), rpm=rpm,
                                cache=cache, refresh=refresh, stats=stats or RunStats(),
                                frame=frame, tracer=tracer))

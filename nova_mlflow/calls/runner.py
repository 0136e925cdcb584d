"""Provider calls at scale: bounded concurrency, an even request rate, retries, progress.

One loop for every caller (model runs and the LLM judge): `execute` takes items and the
caller's `CallHooks` (how an item becomes a request, whether a stored answer exists, how a
call is traced, what the result is) and does the rest the same way for everyone.

- Requests are built inside the worker, so an image is read only when its call starts.
- Retries: 408/409/429/5xx, timeouts and dropped connections, with exponential backoff and
  full jitter, honouring the server's Retry-After; every SDK's own retry is switched off so
  this is the only retry loop. A call that still fails is an outcome with an error, never a
  crash.
- `run_sync` runs the loop from plain code and from inside a running event loop (Jupyter).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sys
import time
from collections.abc import Coroutine, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from tqdm import tqdm

from nova_mlflow.config import CallOptions, RetryPolicy
from nova_mlflow.providers.base import NoAnswer, Provider, Request, Response, classify
from nova_mlflow.secrets import redact

T = TypeVar("T")
R = TypeVar("R")


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
    """Exception summary for an answer record, with anything key-shaped removed."""
    return redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]) or ""


class AttemptObserver(Protocol):
    """What the runner tells a trace span about failed attempts."""

    def attempt_failed(self, attempt: int, status: int | None, error: str, retryable: bool,
                       delay_s: float | None) -> None: ...


@dataclass
class RunStats:
    requests: int = 0  # HTTP-level attempts made
    cache_hits: int = 0
    retries: int = 0


@dataclass
class CallSession:
    """A provider and how to call it; `stats` accumulates over every `execute`."""

    provider: Provider
    options: CallOptions = field(default_factory=CallOptions)
    stats: RunStats = field(default_factory=RunStats)
    label: str = ""  # progress-bar title; the model name when empty


@dataclass
class Retrying:
    """How one `execute` calls its provider: the retry policy, the rate limiter and jitter
    source its calls share, and the session's counters."""

    provider: Provider
    policy: RetryPolicy
    limiter: RateLimiter
    rng: random.Random
    stats: RunStats

    async def call(self, request: Request, span: AttemptObserver | None = None
                   ) -> tuple[Response, int]:
        """(response, attempts). `span`, when given, gets one event per failed attempt."""
        attempt, policy = 0, self.policy
        while True:
            await self.limiter.wait()
            self.stats.requests += 1
            try:
                resp = await asyncio.wait_for(self.provider.generate(request), policy.timeout)
                return resp, attempt + 1
            except NoAnswer:
                raise
            except Exception as exc:
                info = classify(exc)
                final = not info.retryable or attempt >= policy.max_retries
                delay = None if final else policy.delay(attempt, info.retry_after, self.rng)
                if span is not None:
                    span.attempt_failed(attempt + 1, info.status, error_text(exc),
                                        info.retryable, delay)
                if final:
                    exc.attempts = attempt + 1  # type: ignore[attr-defined]
                    raise
                self.stats.retries += 1
                await asyncio.sleep(delay or 0.0)
                attempt += 1


@dataclass(frozen=True)
class Outcome:
    """How one item's call went: a response (fresh or stored), an error, or no answer."""

    response: Response | None
    attempts: int = 0
    latency_s: float = 0.0
    error: str | None = None  # set when the call failed after retries
    missing: bool = False  # the provider has no answer for it (replay without the line)


class CallHooks(Protocol, Generic[T, R]):
    """What a caller plugs into `execute`."""

    def request(self, item: T) -> Request: ...

    def stored(self, item: T, request: Request) -> Response | None:
        """A stored response to use instead of a call (None: ask the provider)."""

    def span(self, item: T, request: Request, cached: bool) -> AbstractContextManager[Any]:
        """A context yielding a trace span (or None) around the call or cache hit."""

    def keep(self, item: T, request: Request, response: Response) -> None:
        """Called with each fresh response the moment it arrives (to store it)."""

    def result(self, item: T, request: Request, outcome: Outcome, span: Any) -> R | None:
        """The caller's result for the item; None leaves it out of the returned list."""


async def execute(session: CallSession, items: Sequence[T], hooks: CallHooks[T, R]) -> list[R]:
    """Every item through the provider (or the store), at most `concurrency` at a time."""
    opts = session.options
    sem = asyncio.Semaphore(max(1, opts.concurrency))
    stats = session.stats
    caller = Retrying(session.provider, opts.retry, RateLimiter(opts.rpm), random.Random(0),
                      stats)
    bar = tqdm(total=len(items), desc=session.label or session.provider.model, unit="call",
               file=sys.stderr, disable=not opts.progress, dynamic_ncols=True, mininterval=0.5,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                          "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    async def one(item: T) -> R | None:
        async with sem:
            request = hooks.request(item)
            start = time.perf_counter()
            hit = None if opts.refresh else hooks.stored(item, request)
            with hooks.span(item, request, hit is not None) as span:
                try:
                    if hit is not None:
                        stats.cache_hits += 1
                        outcome = Outcome(hit, 0, round(time.perf_counter() - start, 4))
                    else:
                        resp, attempts = await caller.call(request, span)
                        hooks.keep(item, request, resp)
                        outcome = Outcome(resp, attempts, round(time.perf_counter() - start, 4))
                except NoAnswer:
                    outcome = Outcome(None, missing=True)
                except Exception as exc:  # provider failures are results, never crashes
                    outcome = Outcome(None, getattr(exc, "attempts", 1),
                                      round(time.perf_counter() - start, 4), error_text(exc))
                result = hooks.result(item, request, outcome, span)
        bar.update(1)
        if stats.retries or stats.cache_hits:
            bar.set_postfix_str(f"cached={stats.cache_hits} retries={stats.retries}",
                                refresh=False)
        return result

    try:
        results = await asyncio.gather(*(one(i) for i in items))
    finally:
        bar.close()
    return [r for r in results if r is not None]


def run_sync(coro: Coroutine[Any, Any, R]) -> R:
    """asyncio.run, also from inside a running event loop (a notebook, an async server),
    where the coroutine runs in a worker thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nova-calls") as pool:
        return pool.submit(asyncio.run, coro).result()

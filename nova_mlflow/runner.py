"""Runs model calls with bounded concurrency and a progress bar.

Requests are built lazily inside the worker (an image is read only when its call starts),
each answer is handed to `on_answer` as soon as it arrives (the caller writes it to disk
before anything is scored), and a provider exception becomes an `api_error` answer rather
than a crash.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from nova_mlflow.providers.base import Provider, Request
from nova_mlflow.schemas import Answer, Case, Task


@dataclass(frozen=True)
class Job:
    case: Case
    task: Task


def error_text(exc: BaseException) -> str:
    """Exception summary for the answer record; SDK errors never include the key itself."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]


async def _run_all(
    provider: Provider,
    jobs: Sequence[Job],
    make_request: Callable[[Job], Request],
    on_answer: Callable[[Answer], None],
    concurrency: int,
    progress: bool,
) -> list[Answer]:
    sem = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(jobs), desc=f"{provider.model}", unit="call", file=sys.stderr,
               disable=not progress, dynamic_ncols=True, mininterval=0.5)

    async def one(job: Job) -> Answer:
        async with sem:
            request = make_request(job)
            start = time.perf_counter()
            try:
                resp = await provider.generate(request)
                answer = Answer(
                    filename=job.case.filename, task=job.task, text=resp.text,
                    status="refused" if resp.refused else "answered", model=provider.model,
                    prompt_version=request.prompt_version,
                    latency_s=round(time.perf_counter() - start, 4),
                    input_tokens=resp.input_tokens, output_tokens=resp.output_tokens,
                )
            except Exception as exc:  # provider failures are results, never crashes
                answer = Answer(
                    filename=job.case.filename, task=job.task, text=None, status="api_error",
                    error=error_text(exc), model=provider.model,
                    prompt_version=request.prompt_version,
                    latency_s=round(time.perf_counter() - start, 4),
                )
            on_answer(answer)
            bar.update(1)
            return answer

    try:
        return list(await asyncio.gather(*(one(j) for j in jobs)))
    finally:
        bar.close()


def run_jobs(
    provider: Provider,
    jobs: Sequence[Job],
    make_request: Callable[[Job], Request],
    on_answer: Callable[[Answer], None],
    *,
    concurrency: int = 8,
    progress: bool = True,
) -> list[Answer]:
    return asyncio.run(_run_all(provider, jobs, make_request, on_answer, concurrency, progress))

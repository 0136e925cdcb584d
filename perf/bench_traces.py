"""Benchmark: what per-call MLflow traces cost a run (issue 9), live and from the cache.

A synthetic N-case dataset (perf/synthetic.py: the real NOVA text, demo images) runs
gpt-4o through the local fake server (canned answers, a fixed latency per call) on all three
tasks, four ways: live with and without traces (--no-cache: every call reaches the server),
and cached with and without traces (a warm response cache: no call at all). Each run is a
whole `run_benchmark` (scoring and artifact logging included), on its own fresh sqlite
store, so the difference between a pair is the tracing overhead. Also timed: the span
bookkeeping on the event loop, the wait for the trace export queue after the calls, and
the one-transaction assessment insert. The section "## Tracing overhead" of BENCHMARKS.md
is written (other sections kept).

    .venv/bin/python perf/bench_traces.py [--n 906] [--latency 0.5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import (
    fmt_s,
    init_store,
    isolate,
    loadavg,
    machine,
    today,
    workdir,
    publish,
)
from perf.synthetic import build, canned_script

SECTION = "tracing-overhead"


class Timers:
    """Wraps the tracer's flush and assessment insert to time them inside a whole run."""

    def __init__(self) -> None:
        from nova_mlflow.tracking import _compat, assessments
        from nova_mlflow.tracking.traces import Tracer

        self.flush_s = self.assess_s = self.span_s = 0.0
        self.n_assessments = self.n_traces = 0
        orig_flush, orig_bulk, orig_log = (assessments.flush, _compat.insert_assessments,
                                           Tracer.log_scores)
        timers = self

        def flush() -> None:
            t = time.perf_counter()
            orig_flush()
            timers.flush_s += time.perf_counter() - t

        def bulk(entities):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            ok = orig_bulk(entities)
            timers.assess_s += time.perf_counter() - t
            timers.n_assessments += len(entities)
            return ok

        def log_scores(self, scores, cases):  # type: ignore[no-untyped-def]
            n = orig_log(self, scores, cases)
            timers.span_s += self.seconds
            timers.n_traces += len(self.trace_ids)
            return n

        assessments.flush, _compat.insert_assessments = flush, bulk
        Tracer.log_scores = log_scores


def one_run(tag: str, data: Path, base_url: str, *, traces: bool, cached: bool,
            concurrency: int) -> dict:
    from nova_mlflow.config import RunConfig
    from nova_mlflow.pipeline.run import run as run_benchmark

    shutil.rmtree(workdir() / "stores" / f"traces-{tag}", ignore_errors=True)
    isolate(f"traces-{tag}")
    init_store(f"traces-{tag}")
    timers = Timers()
    cfg = RunConfig(data=str(data), model="gpt-4o", concurrency=concurrency, progress=False,
                    experiment="bench-traces", run_name=tag, traces=traces, use_cache=cached,
                    retry={"base_delay": 0.01}, base_url=base_url)
    t = time.perf_counter()
    summary = run_benchmark(cfg)
    wall = time.perf_counter() - t
    return {"tag": tag, "wall": wall, "requests": summary.metrics["run/requests"],
            "cache_hits": summary.metrics["run/cache_hits"], "span_s": timers.span_s,
            "flush_s": timers.flush_s, "assess_s": timers.assess_s,
            "n_assessments": timers.n_assessments, "n_traces": timers.n_traces}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=906)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from nova_mlflow.wordnet import wordnet
    from nova_mlflow.testing.fake_server import FakeModelServer, FaultPlan

    load = loadavg()
    data = build(a.n)
    isolate("traces-warmup")
    wordnet()  # built once per process; not part of any run's time
    srv = FakeModelServer(FaultPlan(latency_s=a.latency), script=canned_script,
                          api_key="sk-bench-0000000000").start()
    rows = []
    try:
        # warm-up (imports, first-time work) that also fills the response cache, untimed
        for tag, traces, cached in (("fill-cache", False, True),
                                    ("live-no-traces", False, False), ("live-traces", True, False),
                                    ("cached-no-traces", False, True),
                                    ("cached-traces", True, True)):
            r = one_run(tag, data, srv.openai_base_url, traces=traces, cached=cached,
                        concurrency=a.concurrency)
            print(r, flush=True)
            if tag != "fill-cache":
                rows.append(r)
    finally:
        srv.stop()
    by = {r["tag"]: r for r in rows}
    calls = 3 * a.n
    workers = os.environ.get("MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS",
                             "1 (the Tracer default on sqlite)")
    setup = (f"`perf/bench_traces.py --n {a.n} --latency {a.latency} --concurrency "
             f"{a.concurrency}`, run {today()} on {machine()}; load average at the start "
             f"{load} (a shared machine: other work inflates the times).")
    data_line = (f"Input: a synthetic {a.n}-case set (real NOVA text, demo images; "
                 "perf/synthetic.py), gpt-4o through the local fake server (canned "
                 f"answers, {a.latency} s per call), all three tasks = {calls} calls; a whole "
                 "`run_benchmark` each (scoring, tables, figures, artifacts), each on a fresh "
                 "sqlite store. One run per row (n=1). Trace export threads "
                 f"(MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS): {workers}.")
    head = ("| run | wall time | traces | span bookkeeping (event loop) | wait for export "
            "after scoring | assessments insert |")
    lines = ["## Tracing overhead", "", setup, data_line, "", head, "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["n_traces"]
        cells = (f"{fmt_s(r['span_s'])} ({r['span_s'] / t * 1000:.1f} ms/trace) | "
                 f"{fmt_s(r['flush_s'])} | {fmt_s(r['assess_s'])} ({r['n_assessments']} rows, "
                 "one transaction) |") if t else "- | - | - |"
        lines.append(f"| {r['tag']} | {fmt_s(r['wall'])} | {t} | {cells}")
    live = by["live-traces"]["wall"] - by["live-no-traces"]["wall"]
    cached = by["cached-traces"]["wall"] - by["cached-no-traces"]["wall"]
    overhead = (f"Overhead of tracing: live {fmt_s(live)} "
                f"({100 * live / by['live-no-traces']['wall']:.0f} % of the run, "
                f"{live / calls * 1000:.0f} ms per call); cached {fmt_s(cached)} "
                f"({100 * cached / by['cached-no-traces']['wall']:.0f} %, "
                f"{cached / calls * 1000:.0f} ms per cached answer).")
    reading = (
        "How to read it: traces are written while later calls are in flight; on a local SQL "
        "store 100 at a time (tracking/export.py: their rows in one transaction, then one "
        "log_spans call), fast enough to keep up with a run's calls, so what is left after "
        "scoring is the last batch. A cached re-run logs no trace per cached answer: it links "
        "the trace of the call that produced each answer to itself (tracking/linking.py), "
        "then adds its own assessments to it. Assessments (expectations + feedback) go into "
        "sqlite in one transaction; through MLflow's public API they cost one transaction "
        "each. For very large sweeps, `--no-traces` skips all of it.")
    lines += ["", overhead, "", reading]
    body = "\n".join(lines)
    publish(SECTION, body, not a.no_write)
    print(f"(work dir {workdir()})")


if __name__ == "__main__":
    main()

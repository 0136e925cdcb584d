"""Benchmark: how fast model-call traces reach the store, by export strategy and store.

A run ends one trace per call: at concurrency 32 and 0.5 s per call, ~64 a second. This
opens and ends N traces shaped as the package's (tracking.traces.Tracer.span on the real
NOVA cases: inputs with the rendered prompt, outputs, usage, tags, metadata, preview) at a
given rate, in a fresh process per measurement, then waits for the export to finish
(`mlflow.flush_trace_async_logging`). Reported: export throughput (traces/s, from the first
trace to the end of the flush), the wait after the last trace, and whether every trace is
in the store (MLflow drops traces when its export queue is full).

Strategies:
- mlflow-wN: MLflow's own exporter (log_spans, then start_trace, per trace) with N threads;
- batched: tracking/export.py (rows of 100 traces in one transaction, one log_spans call).
Stores: a sqlite file; `mlflow server` with a PostgreSQL backend store (`--postgres URI`,
a database this benchmark may empty; `--server-workers`).

    python -m perf.bench_trace_export [--n 2718] [--rate 64] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import PYTHON, ROOT, end_meta, fmt_s, header, loadavg, new_meta, workdir, publish

SECTION = "tracing-export"


def child(a: argparse.Namespace) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    import mlflow

    from nova_mlflow.schemas import Answer, Task
    from nova_mlflow.tracking import traces as tracing
    from perf.synthetic import CANNED, build

    if a.strategy.startswith("mlflow"):
        tracing.batch_exports = lambda uri: None  # MLflow's own exporter
        os.environ["MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS"] = a.strategy.split("-w")[1]
    mlflow.set_tracking_uri(a.uri)
    exp = mlflow.set_experiment(f"export-{a.strategy}-{os.getpid()}").experiment_id
    from nova_mlflow.data import load_dataset
    from nova_mlflow.pipeline.run import make_request
    from nova_mlflow.prompts import load_prompt
    from nova_mlflow.schemas import GenerationSettings

    cases = load_dataset(str(build(906)), check_images=False).cases
    prompts = {t: load_prompt(t, "v1") for t in Task}
    jobs = [(c, t) for t in Task for c in cases][: a.n]
    from nova_mlflow.calls.jobs import Job

    with mlflow.start_run(experiment_id=exp) as run:
        tracer = tracing.Tracer(run.info.run_id, exp, "gpt-4o", {t: p.name for t, p in prompts.items()})
        reqs = [make_request(Job(c, t), prompts, GenerationSettings()) for c, t in jobs]
        t0 = time.perf_counter()
        for i, ((case, task), req) in enumerate(zip(jobs, reqs)):
            due = t0 + i / a.rate if a.rate else 0
            if due > time.perf_counter():
                time.sleep(due - time.perf_counter())
            with tracer.span(case, task, req) as span:
                span.finish(Answer(filename=case.filename, task=task, text=CANNED[task.value],
                                   model="gpt-4o", prompt_version="v1", input_tokens=500,
                                   output_tokens=40, latency_s=0.5, attempts=1))
        t_last = time.perf_counter()
        mlflow.flush_trace_async_logging()
        t_done = time.perf_counter()
    found = len(mlflow.search_traces(locations=[exp], run_id=run.info.run_id,
                                     include_spans=False, max_results=a.n + 100,
                                     return_type="list"))
    print(json.dumps({"strategy": a.strategy, "n": len(jobs), "offer_s": t_last - t0,
                      "wait_s": t_done - t_last, "total_s": t_done - t0, "found": found,
                      "span_s": tracer.seconds}), flush=True)


def run_one(strategy: str, uri: str, n: int, rate: float) -> dict:
    cmd = [PYTHON, "-m", "perf.bench_trace_export", "--child", "--strategy", strategy,
           "--uri", uri, "--n", str(n), "--rate", str(rate)]
    load = loadavg()
    out = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    r = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    r["load"] = load
    print(f"  {strategy} on {uri.split(':')[0]}: {r['n'] / r['total_s']:.0f} traces/s, wait "
          f"{r['wait_s']:.1f} s after the last, {r['found']}/{r['n']} in the store (load {load})",
          file=sys.stderr, flush=True)
    return r


def render(res: dict, meta: dict) -> str:
    lines = ["## Trace export: strategies and stores (issue 17)", "", header(meta), "",
             f"{meta['n']} traces shaped as a run's model calls (the package's Tracer on the "
             f"real NOVA cases: prompt text, outputs, usage, tags, metadata, preview), offered "
             f"at {meta['rate']:.0f} a second (a 906-case run at concurrency 32 and 0.5 s per "
             "call), one fresh process per row; then `mlflow.flush_trace_async_logging()`. "
             "Throughput = traces / (first trace to end of flush). `mlflow server --workers "
             f"{meta['server_workers']}` on the same 2 cores for the PostgreSQL rows.", "",
             "| store | strategy | throughput | wait after the last trace | in the store | load |",
             "|---|---|---:|---:|---:|---|"]
    for extra in meta.get("extra", []):
        lines.insert(3, "Rows added by `" + extra["cmd"] + f"`, run {extra['date']}, load "
                     f"{extra['load_start']} -> {extra.get('load_end', '?')}.")
    for store, rows in res.items():
        for r in rows:
            lines.append(f"| {store} | {r['strategy']} | {r['n'] / r['total_s']:.0f} traces/s "
                         f"| {fmt_s(r['wait_s'])} | {r['found']:,} / {r['n']:,} | "
                         f"{r['load'].split(' / ')[0]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--strategy", default="batched")
    ap.add_argument("--uri", default=None)
    ap.add_argument("--n", type=int, default=2718)
    ap.add_argument("--rate", type=float, default=64.0)
    ap.add_argument("--strategies", default="mlflow-w1,batched")
    ap.add_argument("--server-strategies", default="mlflow-w10,mlflow-w32,batched")
    ap.add_argument("--postgres", default=None, help="PostgreSQL URI for the server's store")
    ap.add_argument("--server-workers", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--merge", action="store_true", help="add the rows to the saved results")
    a = ap.parse_args()
    if a.child:
        child(a)
        return
    from perf.bench_logging import mlflow_server

    import re

    cmd = re.sub(r"://([^:/@]+):[^@/]+@", r"://\1:***@", " ".join(sys.argv[1:]))
    meta = new_meta(("python -m perf.bench_trace_export " + cmd).strip())
    meta.update(n=a.n, rate=a.rate, server_workers=a.server_workers)
    res: dict[str, list[dict]] = {}
    db = workdir() / "stores" / f"export-{os.getpid()}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    if a.strategies:
        res["sqlite"] = [run_one(s, f"sqlite:///{db}", a.n, a.rate)
                         for s in a.strategies.split(",")]
    if a.postgres:
        tmp = workdir() / "stores" / f"server-pg-{os.getpid()}"
        with mlflow_server(tmp, backend=a.postgres, workers=a.server_workers) as (url, _):
            res["mlflow server + PostgreSQL"] = [run_one(s, url, a.n, a.rate)
                                                 for s in a.server_strategies.split(",")]
    end_meta(meta)
    out = workdir() / "trace_export.json"
    if a.merge and out.exists():  # add these rows to a saved run's (same section)
        saved = json.loads(out.read_text())
        for store, rows in res.items():
            saved["results"].setdefault(store, []).extend(rows)
        saved["meta"]["extra"] = saved["meta"].get("extra", []) + [meta]
        meta, res = saved["meta"], saved["results"]
    out.write_text(json.dumps({"meta": meta, "results": res}))
    body = render(res, meta)
    publish(SECTION, body, not a.no_write)


if __name__ == "__main__":
    main()

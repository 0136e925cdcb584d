"""Benchmark: peak memory and how time and memory grow from 100 to 906 to 9,060 cases.

Each measurement is a fresh child process running `staged_run`: the steps of
nova_mlflow.pipeline.run.run in the same order, with time.perf_counter and the
process' RSS high-water mark (VmHWM, what ru_maxrss reports) read around each library call.
The model is `replay:` of a JSONL holding the canned answer of every case, so every stage
of a real run happens (load + validate, one request per case x task with its image read
lazily, parse + score, report files, MLflow logging to a fresh sqlite store) except waiting
for a server. The parent also reads the child's ru_maxrss from wait4().

    .venv/bin/python perf/bench_scaling.py [--sizes 100,906,9060] [--repeats 3] [--no-write]

`staged_run` is shared with bench_throughput.py (cached re-run stage shares).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import (
    PYTHON,
    ROOT,
    end_meta,
    fmt_s,
    header,
    init_store,
    isolate,
    loadavg,
    new_meta,
    rss_mib,
    summary,
    workdir,
    publish,
)

SECTION = "scaling"
SIZES = (100, 906, 9060)


class Stages:
    """Ordered {stage, s, cpu, rss, peak} records (cpu: the process's CPU seconds in the
    stage); a stage entered several times accumulates."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._depth = 0

    def add(self, name: str, dt: float, cpu: float = 0.0) -> None:
        cur, peak = rss_mib()
        for r in self.rows:
            if r["stage"] == name:
                r["s"] += dt
                r["cpu"] += cpu
                r["rss"], r["peak"] = cur, peak
                return
        self.rows.append({"stage": name, "s": dt, "cpu": cpu, "rss": cur, "peak": peak})

    @contextmanager
    def __call__(self, name: str):
        """Time a block; nested timed blocks count for the outermost one only."""
        if self._depth:
            yield
            return
        self._depth += 1
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._depth -= 1
            self.add(name, time.perf_counter() - t, time.process_time() - c)

    def wrap(self, owner: object, attr: str, name: str) -> None:
        """Replace owner.attr (a function, method or context manager factory) by a timed one."""
        import functools

        fn = getattr(owner, attr, None)
        if fn is None:
            return
        stages = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with stages(name):
                return fn(*args, **kwargs)

        setattr(owner, attr, timed)

    def wrap_cm(self, owner: object, attr: str, enter: str, exit_: str) -> None:
        """Time a context manager factory's __enter__ and __exit__ apart (not its body)."""
        fn = getattr(owner, attr, None)
        if fn is None:
            return
        stages = self

        @contextmanager
        def timed(*args, **kwargs):
            cm = fn(*args, **kwargs)
            with stages(enter):
                value = cm.__enter__()
            try:
                yield value
            except BaseException:
                with stages(exit_):
                    if not cm.__exit__(*sys.exc_info()):
                        raise
            else:
                with stages(exit_):
                    cm.__exit__(None, None, None)

        setattr(owner, attr, timed)


#: (module, attribute, stage): the library calls run_benchmark makes, timed where they are
#: looked up; a name that does not exist (the package changed) is skipped.
TARGETS = (
    ("nova_mlflow.pipeline.setup", "check_config", "check config + WordNet"),
    ("nova_mlflow.pipeline.run", "load_dataset", "load + validate dataset"),
    ("nova_mlflow.pipeline.run", "create_provider", "provider + judge setup"),
    ("nova_mlflow.pipeline.setup", "make_judge", "provider + judge setup"),
    ("nova_mlflow.pipeline.setup", "register_prompts", "mlflow: prompt registry"),
    ("nova_mlflow.pipeline.run", "run_jobs", "requests (runner)"),
    ("nova_mlflow.scoring.localization", "score", "score localization"),
    ("nova_mlflow.scoring.captioning", "score", "score captioning"),
    ("nova_mlflow.scoring.diagnosis", "score", "score diagnosis"),
    ("nova_mlflow.pipeline.results", "usage_metrics", "usage metrics"),
    ("nova_mlflow.report.localization", "artifacts", "report files (tables, figures, HTML)"),
    ("nova_mlflow.report.captioning", "artifacts", "report files (tables, figures, HTML)"),
    ("nova_mlflow.report.diagnosis", "artifacts", "report files (tables, figures, HTML)"),
    ("nova_mlflow.pipeline.results", "build_report", "report files (tables, figures, HTML)"),
    ("nova_mlflow.tracking.traces.Tracer", "log_scores", "traces: flush + assessments"),
    ("nova_mlflow.tracking.RunLogger", "params", "mlflow: params, tags, config, metrics"),
    ("nova_mlflow.tracking.RunLogger", "metrics", "mlflow: params, tags, config, metrics"),
    ("nova_mlflow.tracking.RunLogger", "dataset", "mlflow: dataset input"),
    ("nova_mlflow.tracking.RunLogger", "table", "mlflow: per-case tables"),
    ("nova_mlflow.tracking.RunLogger", "results", "mlflow: per-case tables"),
    ("nova_mlflow.tracking.RunLogger", "artifacts", "mlflow: artifacts (answers, report, schemas)"),
    ("nova_mlflow.tracking.RunLogger", "dict", "mlflow: artifacts (answers, report, schemas)"),
    ("nova_mlflow.tracking.RunLogger", "artifact", "mlflow: artifacts (answers, report, schemas)"),
)
OPEN, CLOSE = "mlflow: open run", "mlflow: close run"


def _resolve(dotted: str) -> object:
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(dotted)


def instrument(stages: Stages) -> list[str]:
    """Wrap every target with a timer (in this process only); returns those not found."""
    missing = []
    for owner, attr, name in TARGETS:
        try:
            obj = _resolve(owner)
        except (ImportError, AttributeError):
            missing.append(f"{owner}.{attr}")
            continue
        if getattr(obj, attr, None) is None:
            missing.append(f"{owner}.{attr}")
            continue
        stages.wrap(obj, attr, name)
    from nova_mlflow import tracking

    stages.wrap_cm(tracking, "start_run", OPEN, CLOSE)
    return missing


def staged_run(cfg, stages: Stages) -> dict:
    """The real `run_benchmark(cfg)` with a timer around each library call it makes.

    The package is not edited: the functions run_benchmark looks up (in its own module, in
    nova_mlflow.tracking and in the scoring modules) are wrapped in this process. Time that
    no wrapper covers (run_benchmark's own glue) is reported as "other".
    """
    from nova_mlflow.pipeline.run import run as run_benchmark

    missing = instrument(stages)
    t = time.perf_counter()
    summary_ = run_benchmark(cfg)
    total = time.perf_counter() - t
    stages.add("other (run_benchmark glue, untimed)", total - sum(
        r["s"] for r in stages.rows if r["stage"] != "import nova_mlflow + mlflow"))
    m = summary_.metrics
    statuses = {k.split("/", 1)[1]: int(v) for k, v in m.items()
                if k.split("/", 1)[-1] in ("answered", "api_errors", "parse_failures", "missing")
                and k.startswith("localization/")}
    return {"n_cases": len(summary_.dataset), "n_requests": len(cfg.tasks) * len(summary_.dataset),
            "requests": int(m.get("run/requests", -1)), "cache_hits": int(m.get("run/cache_hits", -1)),
            "statuses": statuses, "run_id": summary_.run_id, "missing_targets": missing,
            "run_benchmark_s": total}


def child_main(a: argparse.Namespace) -> None:
    """One staged run in this (fresh) process; prints one JSON line on stdout."""
    t_start = time.perf_counter()
    isolate(a.store)
    if os.environ.get("NOVA_SCALING_CACHE"):  # a response cache of its own (cached re-runs)
        os.environ["NOVA_MLFLOW_CACHE"] = os.environ["NOVA_SCALING_CACHE"]
    stages = Stages()
    with stages("import nova_mlflow + mlflow"):
        import mlflow  # noqa: F401

        from nova_mlflow.config import RunConfig
    cfg = RunConfig(data=a.data, model=a.model, frame=a.frame, concurrency=a.concurrency,
                    use_cache=a.cache, progress=False, base_url=a.base_url,
                    experiment=a.experiment, traces=a.traces)
    facts = staged_run(cfg, stages)
    cur, peak = rss_mib()
    print(json.dumps({"stages": stages.rows, "facts": facts, "total_s": time.perf_counter() - t_start,
                      "rss_end": cur, "peak": peak, "after_import_rss": stages.rows[0]["rss"]}),
          flush=True)


def run_child(data: Path, model: str, *, store: str, frame: str | None = None,
              cache: bool = False, base_url: str | None = None, concurrency: int = 64,
              experiment: str = "bench", traces: bool = False, env: dict | None = None) -> dict:
    """Run child_main in a fresh interpreter; returns its JSON plus ru_maxrss and wall time."""
    cmd = [PYTHON, str(Path(__file__).resolve()), "--child", "--data", str(data), "--model", model,
           "--store", store, "--concurrency", str(concurrency), "--experiment", experiment]
    if frame:
        cmd += ["--frame", frame]
    if cache:
        cmd += ["--cache"]
    if traces:
        cmd += ["--traces"]
    if base_url:
        cmd += ["--base-url", base_url]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT), env={**os.environ, **(env or {})})
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    # communicate() already reaped it; ru_maxrss via RUSAGE_CHILDREN is a max over all
    # children, so the child reports its own VmHWM (the same number) instead.
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {err[-3000:]}")
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    res = json.loads(line)
    res["wall_s"] = wall
    return res


def prepare(n: int) -> tuple[Path, str]:
    from perf.synthetic import build, replay_file

    data = build(n)
    return data, f"replay:{replay_file(data)}"


def measure(sizes: tuple[int, ...], repeats: int, big_repeats: int) -> dict:
    results: dict[int, list[dict]] = {}
    init_store("scaling")
    for n in sizes:
        data, model = prepare(n)
        reps = big_repeats if n > 2000 else repeats
        results[n] = []
        for i in range(reps):
            load = loadavg()
            r = run_child(data, model, store="scaling", frame="pixel_xyxy")
            r["load"] = load
            results[n].append(r)
            print(f"  n={n} rep {i + 1}/{reps}: total {r['total_s']:.1f} s, peak "
                  f"{r['peak']:.0f} MiB (load {load})", file=sys.stderr, flush=True)
    return results


def _med(rows: list[dict], key) -> float:
    return summary([key(r) for r in rows])["median"]


def _stage(r: dict, name: str) -> float:
    return sum(s["s"] for s in r["stages"] if s["stage"] == name)


TIMELINE = ("import nova_mlflow + mlflow", "check config + WordNet", "load + validate dataset",
            "requests (runner)", "score localization", "score captioning", "score diagnosis",
            "report files (tables, figures, HTML)", "mlflow: close run")
GROUPS = {  # the stages that matter, summed from the child's records
    "load + validate": ["load + validate dataset"],
    "requests (replay, images read lazily)": ["requests (runner)"],
    "scoring (3 tasks)": ["score localization", "score captioning", "score diagnosis",
                          "usage metrics"],
    "report files (tables, figures, HTML)": ["report files (tables, figures, HTML)"],
    "MLflow logging": ["mlflow: prompt registry", OPEN, CLOSE,
                       "mlflow: params, tags, config, metrics", "mlflow: dataset input",
                       "mlflow: per-case tables", "mlflow: artifacts (answers, report, schemas)"],
}


def render(results: dict[int, list[dict]], meta: dict) -> str:
    sizes = sorted(results)
    base_n = sizes[0]
    lines = [
        "## Scaling and peak memory (100 / 906 / 9,060 cases)",
        "",
        header(meta),
        "",
        "Each figure is a fresh child process running the real `run_benchmark` with a timer "
        "around each library call it makes (perf/bench_scaling.py: `staged_run`; "
        "per-call MLflow traces off), model `replay:` of a JSONL "
        "holding a canned answer per case and task, so every stage of a real run happens "
        "(load + validate every PNG, one request per case x task with its image read lazily, "
        "parse + score, report files, MLflow logging to sqlite) except waiting for a server. "
        "Synthetic data from perf/synthetic.py: the real NOVA metadata rows (cycled, "
        "renamed past 906) with the demo set's 480 x 480 PNGs, each copy unique (~130 kB: "
        "9,060 images are 1.2 GB on disk). Peak memory = the child's VmHWM (= ru_maxrss).",
        "",
        "| cases | runs | total (median, min-max) | peak RSS | RSS after imports | after the "
        "WordNet reader | peak growth per extra case (vs the smallest run) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    p0 = _med(results[base_n], lambda r: r["peak"])
    for n in sizes:
        rows = results[n]
        s = summary([r["total_s"] for r in rows])
        peak = _med(rows, lambda r: r["peak"])
        imp = _med(rows, lambda r: r["after_import_rss"])
        wn = _med(rows, lambda r: next(x["peak"] for x in r["stages"]
                                        if x["stage"] == "check config + WordNet"))
        rng = f"{fmt_s(s['median'])} ({fmt_s(s['min'])}-{fmt_s(s['max'])})" if s["n"] > 1 \
            else fmt_s(s["median"])
        grow = "-" if n == base_n else f"{(peak - p0) * 1024 / (n - base_n):.0f} KiB"
        lines.append(f"| {n:,} | {s['n']} | {rng} | {peak:.0f} MiB | {imp:.0f} MiB | "
                     f"{wn:.0f} MiB | {grow} |")
    lines += ["", "Time per stage (median over the runs) and its growth relative to "
              f"{base_n:,} cases (linear scaling = the ratio of case counts: "
              + ", ".join(f"{n // base_n if n % base_n == 0 else n / base_n:.4g}x"
                          for n in sizes[1:]) + "):", "",
              "| stage | " + " | ".join(f"{n:,} cases" for n in sizes) + " | "
              + " | ".join(f"{n:,}/{base_n:,}" for n in sizes[1:]) + " | "
              + " | ".join(f"s per 1,000 at {n:,}" for n in sizes) + " |",
              "|---|" + "---:|" * (2 * len(sizes) - 1 + len(sizes))]
    for g, names in GROUPS.items():
        meds = [_med(results[n], lambda r, names=names: sum(_stage(r, x) for x in names)) for n in sizes]
        lines.append(f"| {g} | " + " | ".join(fmt_s(m) for m in meds) + " | "
                     + " | ".join(f"{m / meds[0]:.1f}x" for m in meds[1:]) + " | "
                     + " | ".join(f"{m / n * 1000:.2f}" for m, n in zip(meds, sizes)) + " |")
    fixed = [_med(results[n], lambda r: _stage(r, "import nova_mlflow + mlflow")
                  + _stage(r, "check config + WordNet")) for n in sizes]
    lines.append("| fixed: imports + WordNet reader | " + " | ".join(fmt_s(m) for m in fixed)
                 + " | " + " | ".join("-" for _ in sizes[1:]) + " | "
                 + " | ".join("-" for _ in sizes) + " |")
    lines += ["", "Peak RSS (MiB, median) at the end of each stage, in the order they run:", "",
              "| after | " + " | ".join(f"{n:,} cases" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for st in TIMELINE:
        vals = []
        for n in sizes:
            v = [x["peak"] for r in results[n] for x in r["stages"] if x["stage"] == st]
            vals.append(f"{summary(v)['median']:.0f}" if v else "-")
        lines.append(f"| {st} | " + " | ".join(vals) + " |")
    img_mib = sizes[-1] * 130 / 1024
    lines += ["", f"Images load lazily: {sizes[-1]:,} cases hold ~{img_mib:,.0f} MiB of PNG bytes, "
              f"while the peak grows by {_med(results[sizes[-1]], lambda r: r['peak']) - p0:.0f} "
              f"MiB from {base_n:,} to {sizes[-1]:,} cases (cases, answers, per-case tables and "
              "the dataset frame). The fixed ~"
              f"{_med(results[base_n], lambda r: next(x['peak'] for x in r['stages'] if x['stage'] == 'check config + WordNet')) - _med(results[base_n], lambda r: r['after_import_rss']):.0f}"
              " MiB step is the WordNet reader METEOR needs."]
    facts = results[sizes[-1]][0]["facts"]
    lines += ["", f"Sanity: every run answered all its requests (largest: {facts['n_requests']:,} "
              f"requests, statuses {facts['statuses']})."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data")
    ap.add_argument("--model")
    ap.add_argument("--frame", default=None)
    ap.add_argument("--store", default="scaling")
    ap.add_argument("--experiment", default="bench")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--cache", action="store_true")
    ap.add_argument("--traces", action="store_true", help="per-call MLflow traces (off here)")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--repeats", type=int, default=3, help="runs per size below 2,000 cases")
    ap.add_argument("--big-repeats", type=int, default=1, help="runs per size above 2,000")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="raw results [default: in the work dir]")
    ap.add_argument("--render-only", action="store_true", help="rewrite the section from the saved JSON")
    a = ap.parse_args()
    if a.child:
        child_main(a)
        return
    isolate("scaling-parent")
    out = a.json or workdir() / "scaling.json"
    if a.render_only:
        saved = json.loads(out.read_text())
        results, meta = {int(k): v for k, v in saved["results"].items()}, saved["meta"]
    else:
        sizes = tuple(int(x) for x in a.sizes.split(","))
        meta = new_meta(("python perf/bench_scaling.py " + " ".join(sys.argv[1:])).strip())
        results = measure(sizes, a.repeats, a.big_repeats)
        end_meta(meta)
        out.write_text(json.dumps({"meta": meta, "results": {str(k): v for k, v in results.items()}},
                                  indent=1))
    body = render(results, meta)
    publish(SECTION, body, not a.no_write)


if __name__ == "__main__":
    main()

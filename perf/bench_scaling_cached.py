"""Benchmark: a cached re-run at 100 / 906 / 9,060 cases: time and peak memory (issue 17).

For each size (perf/synthetic.py: the real NOVA rows, cycled past 906, each image unique):
one run of gpt-4o against the fake OpenAI server (no latency, traces on) fills an empty
response cache and the traces the re-runs link; then the same command again, served from
the cache, with `--no-traces` and with traces (each cached answer's trace linked). Every run
is a fresh child process of perf/bench_scaling.py (`staged_run`: the real pipeline with a
timer and the RSS high-water mark around each stage) on its own sqlite store per size.

    python -m perf.bench_scaling_cached [--sizes 100,906,9060] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import (
    end_meta,
    fmt_s,
    header,
    init_store,
    isolate,
    loadavg,
    new_meta,
    summary,
    workdir,
    publish,
)
from perf.bench_scaling import GROUPS, _stage, run_child

SECTION = "scaling-cached"
KINDS = ("fill (live, 0 s latency)", "cached, --no-traces", "cached, traces (linked)")


def measure(sizes: list[int], repeats: int, previous: dict | None = None) -> dict:
    """`previous`: saved results whose fills are kept (their caches and stores are still in
    the work dir): only the cached re-runs are measured again."""
    from perf.bench_throughput import Server
    from perf.synthetic import build

    out: dict[str, dict[str, list[dict]]] = {}
    server = Server(0.0, False)
    try:
        for n in sizes:
            data = build(n)
            store = f"scaling-cached-{n}"
            res: dict[str, list[dict]] = {k: [] for k in KINDS}
            plan = [(k, t, repeats) for k, t in ((KINDS[1], False), (KINDS[2], True))]
            if previous and str(n) in previous:
                res[KINDS[0]] = previous[str(n)][KINDS[0]]
            else:
                init_store(store)
                plan.insert(0, (KINDS[0], True, 1))
            for kind, traces, reps in plan:
                for i in range(reps):
                    load = loadavg()
                    r = run_child(data, "gpt-4o", store=store, cache=True, concurrency=64,
                                  base_url=server.base_url, traces=traces,
                                  experiment=f"cached-{n}",
                                  env={"NOVA_SCALING_CACHE": str(workdir() / f"cache-{n}")})
                    r["load"] = load
                    res[kind].append(r)
                    print(f"  n={n} {kind} {i + 1}/{reps}: {r['wall_s']:.1f} s, peak "
                          f"{r['peak']:.0f} MiB, {r['facts']['requests']} requests, "
                          f"{r['facts']['cache_hits']} hits (load {load})", file=sys.stderr,
                          flush=True)
            out[str(n)] = res
    finally:
        server.close()
    return out


def render(res: dict, meta: dict) -> str:
    sizes = sorted(int(k) for k in res)
    base = sizes[0]
    lines = ["## Cached re-run at scale: time and peak memory (issue 17)", "", header(meta), "",
             "Per size: the synthetic real-layout set (perf/synthetic.py), one run of gpt-4o "
             "against the fake server with no latency (traces on) filling an empty response "
             "cache, then the same command served from the cache, without and with traces "
             "(the re-run links each cached answer's trace). Each run a fresh child process "
             "(perf/bench_scaling.py `staged_run`, concurrency 64, sqlite store per size); "
             "wall time of the child, peak RSS = its VmHWM. Median (min-max, n).", "",
             "| run | " + " | ".join(f"{n:,} cases" for n in sizes) + " | "
             + " | ".join(f"{n:,}/{base:,}" for n in sizes[1:]) + " |",
             "|---|" + "---:|" * (2 * len(sizes) - 1)]
    for kind in KINDS:
        cells, meds = [], []
        for n in sizes:
            rs = res[str(n)][kind]
            s = summary([r["wall_s"] for r in rs])
            meds.append(s["median"])
            peak = summary([r["peak"] for r in rs])["median"]
            rng = (f" ({fmt_s(s['min'])}-{fmt_s(s['max'])}, n={s['n']})" if s["n"] > 1
                   else " (n=1)")
            cells.append(f"{fmt_s(s['median'])}{rng}, {peak:.0f} MiB")
        lines.append(f"| {kind} | " + " | ".join(cells) + " | "
                     + " | ".join(f"{m / meds[0]:.1f}x" for m in meds[1:]) + " |")
    lines += ["", "Cached re-run, `--no-traces`, by stage (median seconds; per 1,000 cases):", "",
              "| stage | " + " | ".join(f"{n:,}" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for g, names in GROUPS.items():
        vals = []
        for n in sizes:
            m = summary([sum(_stage(r, x) for x in names)
                         for r in res[str(n)][KINDS[1]]])["median"]
            vals.append(f"{fmt_s(m)} ({m / n * 1000:.2f})")
        lines.append(f"| {g} | " + " | ".join(vals) + " |")
    ratio = {k: summary([r["wall_s"] for r in res[str(sizes[-1])][k]])["median"]
             / summary([r["wall_s"] for r in res[str(sizes[1] if len(sizes) > 2 else base)][k]])[
                 "median"] for k in KINDS[1:]}
    mid = sizes[1] if len(sizes) > 2 else base
    factor = sizes[-1] / mid
    peaks = {n: summary([r["peak"] for k in KINDS[1:] for r in res[str(n)][k]])["median"]
             for n in sizes}
    worst = max(r["peak"] for n in sizes for k in KINDS for r in res[str(n)][k])
    lines += ["", f"Verdict: from {mid:,} to {sizes[-1]:,} cases ({factor:.0f}x) a cached re-run "
              "takes " + ", ".join(f"{ratio[k]:.1f}x ({k})" for k in KINDS[1:])
              + f" the time: {'at most linear' if max(ratio.values()) <= factor else 'MORE than linear'}"
              f"; peak RSS {peaks[mid]:.0f} -> {peaks[sizes[-1]]:.0f} MiB "
              f"({'at most linear' if peaks[sizes[-1]] / peaks[mid] <= factor else 'more than linear'}), "
              f"largest of any run {worst:.0f} MiB: "
              f"{'under' if worst < 2048 else 'NOT under'} 2 GB."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,906,9060")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--keep-fills", action="store_true",
                    help="re-measure the cached re-runs only, keeping the saved fills")
    a = ap.parse_args()
    isolate("scaling-cached-parent")
    out = workdir() / "scaling_cached.json"
    if a.render_only:
        saved = json.loads(out.read_text())
        res, meta = saved["results"], saved["meta"]
    else:
        meta = new_meta(("python -m perf.bench_scaling_cached " + " ".join(sys.argv[1:])).strip())
        previous = json.loads(out.read_text())["results"] if a.keep_fills else None
        res = measure([int(x) for x in a.sizes.split(",")], a.repeats, previous)
        if previous:
            meta["cmd"] += " (fills from the previous run of " + \
                json.loads(out.read_text())["meta"]["date"] + ")"
        end_meta(meta)
        out.write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    body = render(res, meta)
    publish(SECTION, body, not a.no_write)


if __name__ == "__main__":
    main()

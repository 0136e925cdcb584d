"""Run every issue-8 benchmark and rewrite their sections of BENCHMARKS.md.

    .venv/bin/python -m perf.run_all [--quick] [--only throughput,scaling,logging]
    .venv/bin/python perf/run_all.py

Each benchmark runs in its own process, one after the other (never two at once: they time
things), and replaces only its own section between `<!-- NAME:start -->` and
`<!-- NAME:end -->`; the other sections of BENCHMARKS.md are kept byte for byte. A summary
section (`bench-summary`) with the targets and whether each is met comes first.

Data, caches and MLflow stores go to $NOVA_BENCH_DIR (default /tmp/nova-mlflow-bench), never to
the user's ~/.cache or ./mlflow.db. --quick: fewer repeats and no 9,060-case run (for a smoke
test; its figures are not the published ones).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import (
    PYTHON,
    ROOT,
    fmt_s,
    loadavg,
    machine,
    summary,
    today,
    workdir,
    write_section,
)
from perf.bench_logging import WELL_UNDER, above_bare

HERE = Path(__file__).resolve().parent
VARIABLE = {"load + validate dataset", "requests (runner)", "score localization",
            "score captioning", "score diagnosis"}
SUMMARY = "bench-summary"


def step(name: str, args: list[str]) -> float:
    print(f"== {name}: {' '.join(args)}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    subprocess.run([PYTHON, *args], cwd=str(ROOT), check=True)
    dt = time.perf_counter() - t
    print(f"== {name} done in {dt:.0f} s (load {loadavg()})", file=sys.stderr, flush=True)
    return dt


def _load(name: str) -> dict | None:
    p = workdir() / name
    return json.loads(p.read_text()) if p.exists() else None


def render_summary(durations: dict[str, float], cmd: str, load_start: str) -> str:
    lines = ["## Issue 8 benchmarks: summary", "",
             f"`{cmd}` ran {today()} on {machine()} in {fmt_s(sum(durations.values()))} "
             f"({', '.join(f'{k} {fmt_s(v)}' for k, v in durations.items())}); load average at "
             f"the start {load_start}, at the end {loadavg()}. Details in the sections below.", "",
             "| target | measured | met? |", "|---|---|---|"]
    thr = ((_load("throughput.json") or {}).get("throughput") or {}).get("results") or {}
    c32 = thr.get("main|sdk|fake|32")
    if c32:
        over = summary([(r["ratio"] - 1) * 100 for r in c32])
        runs = ", ".join("%+.0f%%" % ((r["ratio"] - 1) * 100) for r in c32)
        lines.append(f"| throughput at concurrency 32 within 15% of ideal (issue 8) | "
                     f"{over['median']:+.0f}% (runs: {runs}) "
                     f"| {'yes' if over['median'] <= 15 else 'no'} |")
    for key, label in (("diag|httpx|fake|32", "same, the SDK's default httpx2 transport "
                                              "instead of aiohttp"),
                       ("diag|sdk|stdlib|32", "same, fake server with http.server's socket "
                                              "defaults (Nagle on, backlog 5)"),
                       ("diag|sleep|none|32", "runner alone (no HTTP)")):
        if thr.get(key):
            over = summary([(r["ratio"] - 1) * 100 for r in thr[key]])
            lines.append(f"| ({label}) | {over['median']:+.0f}% | "
                         f"{'yes' if over['median'] <= 15 else 'no'} |")
    log = (_load("logging.json") or {}).get("results")
    if log:
        for store in log:
            above = above_bare(log, store)
            met = ("yes" if above <= WELL_UNDER else "no") if store == "sqlite" else "(no target)"
            lines.append(f"| MLflow logging of a 906-case run: the package's cost above MLflow's "
                         f"bare run at most {WELL_UNDER:.0%} of scoring (issue 17), {store} | "
                         f"{above * 100:.1f}% | {met} |")
    sc = (_load("scaling.json") or {}).get("results")
    if sc:
        sizes = sorted(int(k) for k in sc)
        peaks = {n: summary([r["peak"] - r["after_import_rss"] for r in sc[str(n)]])["median"]
                 for n in sizes}
        imp = {n: summary([r["after_import_rss"] for r in sc[str(n)]])["median"] for n in sizes}
        tot = {n: summary([r["total_s"] for r in sc[str(n)]])["median"] for n in sizes}
        if len(sizes) > 1:
            a, b = sizes[0], sizes[-1]
            kib = (peaks[b] - peaks[a]) * 1024 / (b - a)
            lines.append("| images load lazily: memory grows far slower than the image bytes "
                         "(~130 KiB per case) | peak RSS "
                         + ", ".join(f"{peaks[n] + imp[n]:.0f} MiB at {n:,}" for n in sizes)
                         + f"; +{kib:.0f} KiB per extra case | {'yes' if kib < 32 else 'no'} |")
            per = {n: summary([sum(x["s"] for x in r["stages"] if x["stage"] in VARIABLE)
                               for r in sc[str(n)]])["median"] / n * 1000 for n in sizes}
            mid = sizes[1] if len(sizes) > 2 else a
            grow = per[b] / per[mid]
            verdict = "yes" if grow <= 1.25 else f"roughly ({grow:.2f}x per case)"
            lines.append("| time linear in the case count (load + requests + scoring, s per "
                         "1,000 cases) | " + ", ".join(f"{per[n]:.2f} at {n:,}" for n in sizes)
                         + f"; whole run {fmt_s(tot[a])} at {a:,}, {fmt_s(tot[b])} at {b:,} | "
                         + verdict + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="throughput,scaling,logging")
    a = ap.parse_args()
    only = set(a.only.split(","))
    cmd = ("python -m perf.run_all " + " ".join(sys.argv[1:])).strip()
    load_start = loadavg()
    if not (ROOT / "BENCHMARKS.md").exists() or f"<!-- {SUMMARY}:start -->" not in \
            (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"):
        write_section(SUMMARY, "## Issue 8 benchmarks: summary\n\n(running)")
    durations: dict[str, float] = {}
    sizes = "100,906" if a.quick else "100,906,9060"
    durations["datasets"] = step("datasets", [
        "-c", "import sys; sys.path.insert(0, '.'); from perf import isolate; "
        "isolate('datasets'); from perf.synthetic import build, replay_file; "
        f"[replay_file(build(n)) for n in ({sizes},)]"])
    if "throughput" in only:
        args = [str(HERE / "bench_throughput.py")]
        if a.quick:
            args += ["--repeats", "1", "--cached-repeats", "1"]
        durations["throughput + cached"] = step("throughput + cached re-run", args)
    if "scaling" in only:
        args = [str(HERE / "bench_scaling.py"), "--sizes", sizes]
        args += ["--repeats", "1"] if a.quick else ["--repeats", "2"]
        durations["scaling"] = step("scaling + memory", args)
    if "logging" in only:
        args = [str(HERE / "bench_logging.py")] + (["--repeats", "1"] if a.quick else [])
        durations["logging"] = step("logging overhead", args)
    body = render_summary(durations, cmd, load_start)
    write_section(SUMMARY, body)
    print(body)


if __name__ == "__main__":
    main()

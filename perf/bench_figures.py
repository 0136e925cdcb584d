"""Benchmark: the six figures of a 906-case run, one by one (issue 17: <= 1.5 s in total).

Scores the canned answers of the real-layout 906-case set once (perf/synthetic.py), then
writes every task's report files (`report.write_artifacts`: tables, splits and the figures)
`--repeats` times in one process, timing each figure function (Figures 4a-c, 5, the
captioning-by-group chart, 6) in wall and CPU time. The first round also pays the import of
matplotlib and its font cache; it is reported apart.

    python -m perf.bench_figures [--repeats 7] [--no-write]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import end_meta, fmt_s, header, isolate, new_meta, summary, publish

SECTION = "figures"
FIGURES = (("localization", "examples", "Figure 4a: best / median / worst cases (9 slices)"),
           ("localization", "iou_histogram", "Figure 4b: best-IoU histogram"),
           ("localization", "splits_chart", "Figure 4c: localization by group"),
           ("captioning", "figure5", "Figure 5: language of the captions"),
           ("captioning", "by_group_chart", "captioning by plane and sequence"),
           ("diagnosis", "figure6", "Figure 6: diagnosis frequencies"))


def measure(repeats: int) -> dict:
    from perf.synthetic import build, canned_answers
    from nova_mlflow.data import load_dataset
    from nova_mlflow.schemas import Frame, Task
    from nova_mlflow.scoring import ScoreContext, score

    ds = load_dataset(str(build(906)), check_images=False)
    tasks = tuple(Task)
    scores = score(ds.cases, canned_answers(ds.cases, tasks), tasks,
                   ScoreContext(Frame.pixel_xyxy, "none", "gpt-4o"))
    t = time.perf_counter()
    import importlib

    mods = {m: importlib.import_module(f"nova_mlflow.report.plots.{m}")
            for m in ("localization", "captioning", "diagnosis")}
    import_s = time.perf_counter() - t
    times: dict[str, list[tuple[float, float]]] = {f: [] for _, f, _ in FIGURES}
    for mod, fn_name, _ in FIGURES:
        fn = getattr(mods[mod], fn_name)

        @functools.wraps(fn)
        def timed(*a, _fn=fn, _name=fn_name, **k):
            w, c = time.perf_counter(), time.process_time()
            out = _fn(*a, **k)
            times[_name].append((time.perf_counter() - w, time.process_time() - c))
            return out

        setattr(mods[mod], fn_name, timed)
    from nova_mlflow.report import write_artifacts

    totals = []
    for _ in range(repeats + 1):
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            write_artifacts(scores, ds.cases, Path(d))
            totals.append(time.perf_counter() - t)
    return {"import_s": import_s, "times": times, "write_artifacts": totals}


def render(res: dict, meta: dict) -> str:
    t = res["times"]
    lines = ["## The six figures of a 906-case run (issue 17)", "", header(meta), "",
             f"`python -m perf.bench_figures`: scores of the canned answers of the real-layout "
             f"906-case set, then `report.write_artifacts` (tables, splits, figures) "
             f"{meta['repeats']} + 1 times in one process; each figure function timed (it "
             "builds the figure and writes the PNG). Steady state = median (min-max) of the "
             "rounds after the first; the first round also loads matplotlib's fonts. The "
             "process collects garbage as the command does (`__main__.entry`). Importing "
             f"the plotting modules (matplotlib): {fmt_s(res['import_s'])}.", "",
             "| figure | first round | steady state, wall | steady state, CPU |",
             "|---|---:|---:|---:|"]
    first_total = steady_total = cpu_total = 0.0
    for _, name, label in FIGURES:
        xs = t[name]
        s = summary([w for w, _ in xs[1:]])
        c = summary([c for _, c in xs[1:]])
        first_total += xs[0][0]
        steady_total += s["median"]
        cpu_total += c["median"]
        lines.append(f"| {label} | {fmt_s(xs[0][0])} | {fmt_s(s['median'])} "
                     f"({fmt_s(s['min'])}-{fmt_s(s['max'])}) | {fmt_s(c['median'])} |")
    lines.append(f"| **all six** | {fmt_s(first_total)} | {fmt_s(steady_total)} | "
                 f"{fmt_s(cpu_total)} |")
    w = summary(res["write_artifacts"][1:])
    lines += ["", f"All report files (tables, splits, figures, per task): {fmt_s(w['median'])} "
              f"({fmt_s(w['min'])}-{fmt_s(w['max'])}) a round. Target: the six figures <= 1.5 s "
              f"in total: {'met' if steady_total <= 1.5 else 'NOT met'} ({fmt_s(steady_total)} "
              f"steady, {fmt_s(first_total)} in a fresh process's first round)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    isolate("figures")
    meta = new_meta(("python -m perf.bench_figures " + " ".join(sys.argv[1:])).strip())
    meta["repeats"] = a.repeats
    import gc

    from nova_mlflow.__main__ import COMMAND_GC_THRESHOLDS

    gc.set_threshold(*COMMAND_GC_THRESHOLDS)  # as in the command's process (__main__.entry)
    res = measure(a.repeats)
    end_meta(meta)
    body = render(res, meta)
    publish(SECTION, body, not a.no_write)


if __name__ == "__main__":
    main()

"""Benchmark: the case-clustered comparison of 10 runs x 906 slices, every metric, 2,000 draws.

Issue target: under 10 s. The case structure is NOVA's own (281 case_ids, 1-17 slices each),
read from the real metadata CSV in shared/data/nova-metadata (never copied); the answers
are synthetic (nova_mlflow/testing/synthetic_cases.py: one difficulty per case shared by its
slices, ten models of rising skill) and turned into per-case tables by the scoring layer's
own `case_row` functions first, which is scoring's work and not timed. Timed:
`compare_tables` from the ten runs' DataFrames to the finished result (alignment, draws,
every resampled metric, SEs, tests, Holm) with the defaults `compare` uses, median of repeats.

    .venv/bin/python perf/bench_compare.py [--repeats 3] [--runs 10] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nova_mlflow.analysis import StatsConfig, compare_tables
from nova_mlflow.report.compare import CompareResult, write_files
from nova_mlflow.testing.synthetic_cases import simulate_run, tables
from perf import ROOT, end_meta, header, new_meta, spread, write_section

SECTION = "compare-stats"
METADATA = Path("shared") / "data" / "nova-metadata" / "NOVA_metadata.csv"


def metadata_csv() -> Path:
    """The real NOVA metadata beside the checkout (the first ancestor holding shared/)."""
    for d in ROOT.parents:
        if (d / METADATA).is_file():
            return d / METADATA
    raise SystemExit(f"no {METADATA} above {ROOT}: the benchmark needs NOVA's case structure")


def case_ids(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["filename"])
    return [r["case_id"] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    meta = new_meta("perf/bench_compare.py")
    ids = case_ids(metadata_csv())
    t0 = time.perf_counter()
    runs = {f"run{i}": tables(simulate_run(ids, skill=-0.5 + 0.1 * i, seed=100 + i))
            for i in range(args.runs)}
    build = time.perf_counter() - t0
    cfg = StatsConfig(resamples=args.resamples)  # compare's defaults: t test, Holm
    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        comp = compare_tables(runs, "run0", cfg)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    with tempfile.TemporaryDirectory() as tmp:  # what `compare` writes besides (once)
        t = time.perf_counter()
        write_files(CompareResult(comp, {r: r for r in runs}), Path(tmp))
        views = time.perf_counter() - t
    end_meta(meta)
    n_metrics = len(comp.metrics)
    top = comp.metrics["localization/coco_mAP30"].runs[f"run{args.runs - 1}"]
    passing = sum(r.p_adjusted < 0.05 for m in comp.metrics.values() for r in m.runs.values()
                  if r.p_adjusted is not None)
    body = "\n".join([
        "## Comparing runs: case-clustered paired statistics (analysis/)",
        "",
        header(meta),
        "",
        (f"- Data: {args.runs} runs x {len(ids)} slices in {comp.n_clusters} NOVA cases "
         f"(case structure of the real metadata; synthetic answers), {n_metrics} metrics "
         f"(every resampled Table 1-3 metric), {args.resamples} resamples, Holm over "
         f"{n_metrics * (args.runs - 1)} tests."),
        (f"- `compare_tables` wall time: **{spread(times)}** (target < 10 s); CPU time of "
         f"the process (all threads) {spread(cpu)}."),
        f"- Building the per-case component tables (scoring's work, not timed): {build:.1f} s.",
        (f"- Not part of the target, timed once: writing the views `compare` logs (CSV, JSON, "
         f"HTML, the forest plot and {n_metrics} paired plots, matplotlib) {views:.1f} s."),
        (f"- Sanity: coco_mAP30 of the best run vs the baseline: delta {top.delta:+.4f} "
         f"[{top.delta_low:+.4f}, {top.delta_high:+.4f}], p ({cfg.p_method}) {top.p_value:.2g}, "
         f"Holm-adjusted over {n_metrics * (args.runs - 1)} tests {top.p_adjusted:.2g}; "
         f"{passing} of the {n_metrics * (args.runs - 1)} adjusted p below 0.05 (a bootstrap "
         f"p, floored at 1/{args.resamples}, could not pass Holm over that many tests)."),
    ])
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()

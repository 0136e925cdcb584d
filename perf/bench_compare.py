"""Benchmark: the case-clustered comparison of 10 runs x 906 slices, every metric, 2,000 draws.

Issue target: under 10 s. The case structure is NOVA's own (281 case_ids, 1-17 slices each),
read from the real metadata CSV in shared/data/nova-metadata (never copied); the answers
are synthetic (nova_mlflow/testing/synthetic_cases.py: one difficulty per case shared by its
slices, ten models of rising skill) and turned into per-case component tables first, which
is scoring's work and not timed. Timed: `compare_tables` from the ten runs' DataFrames to
the finished result (alignment, draws, all 35 metrics, SEs, tests, Holm), median of repeats.

    .venv/bin/python benchmarks/bench_compare.py [--repeats 3] [--runs 10] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import ROOT, end_meta, header, new_meta, spread, write_section
from nova_mlflow.analysis import StatsConfig, compare_tables
from nova_mlflow.testing.synthetic_cases import simulate_run, tables

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
    meta = new_meta("benchmarks/bench_compare.py")
    ids = case_ids(metadata_csv())
    t0 = time.perf_counter()
    runs = {f"run{i}": tables(simulate_run(ids, skill=-0.5 + 0.1 * i, seed=100 + i))
            for i in range(args.runs)}
    build = time.perf_counter() - t0
    cfg = StatsConfig(resamples=args.resamples)
    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        comp = compare_tables(runs, "run0", cfg)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    end_meta(meta)
    n_metrics = len(comp.metrics)
    top = comp.metrics["localization/coco_mAP30"].runs[f"run{args.runs - 1}"]
    body = "\n".join([
        "## Comparing runs: case-clustered paired bootstrap (analysis/)",
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
        (f"- Sanity: coco_mAP30 of the best run vs the baseline: delta {top.delta:+.4f} "
         f"[{top.delta_low:+.4f}, {top.delta_high:+.4f}], p {top.p_value:.4f}, Holm-adjusted "
         f"{top.p_adjusted:.4f}: 315 tests need more than 2,000 resamples to reach 0.05, as "
         f"the comparison's note says ({'; '.join(comp.notes) or 'none'})."),
    ])
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()

"""Benchmark: turning a cached traced run's assessments into rows, ORM objects vs plain rows.

`_compat.insert_assessments` writes every assessment of a run in one transaction. Its rows
come from MLflow's `SqlAssessments.from_mlflow_entity`; `_compat._row_builder` runs that same
function with `SqlAssessments` bound to `dict`, so no ORM object is built per assessment.
This times both on 15,372 assessments (what a cached 906-case traced run writes: an
expectation and feedback per case and task), in fresh processes, with the collector
thresholds of the command (`__main__.COMMAND_GC_THRESHOLDS`). The first round is what a
command pays (it writes once); later rounds are steady state. House rule 2 keeps a shortcut
only if it saves >= 5% of a run's wall time.

    python -m perf.bench_assessments [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import PYTHON, ROOT, end_meta, fmt_s, header, new_meta, publish, summary

SECTION = "assessment-rows"
N = 15_372

CHILD = r"""
import gc, json, sys, time
from nova_mlflow.__main__ import COMMAND_GC_THRESHOLDS
gc.set_threshold(*COMMAND_GC_THRESHOLDS)
from mlflow.entities import AssessmentSource, Expectation, Feedback
from mlflow.store.tracking.dbmodels.models import SqlAssessments
from nova_mlflow.tracking._compat import _row_builder
mode, n = sys.argv[1], int(sys.argv[2])
src = AssessmentSource(source_type="CODE", source_id="nova")
meta = {"mlflow.assessment.sourceRunId": "0" * 32}
ents = [Expectation(name="final_diagnosis", value="Glioblastoma", source=src,
                    trace_id=f"tr-{i // 6}", metadata=meta) if i % 3 == 0 else
        Feedback(name="top1", value=True, rationale="#1 'GBM': abbreviation", source=src,
                 trace_id=f"tr-{i // 6}", metadata=meta) for i in range(n)]
cols = [c.key for c in SqlAssessments.__table__.columns]
times = []
for _ in range(3):
    t = time.perf_counter()
    if mode == "orm":
        rows = []
        for e in ents:
            sql = SqlAssessments.from_mlflow_entity(e)
            rows.append({k: getattr(sql, k) for k in cols})
    else:
        to_row = _row_builder(SqlAssessments.from_mlflow_entity.__func__)
        rows = [{k: r.get(k) for k in cols} for r in (to_row(SqlAssessments, e) for e in ents)]
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per way")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    meta = new_meta("python -m perf.bench_assessments " + " ".join(sys.argv[1:]))
    got: dict[str, list[list[float]]] = {"orm": [], "rows": []}
    for _ in range(a.repeats):
        for mode in got:  # alternating, so load hits both alike
            out = subprocess.run([PYTHON, "-c", CHILD, mode, str(N)], capture_output=True,
                                 text=True, check=True, cwd=str(ROOT),
                                 env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
            got[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    end_meta(meta)
    labels = {"orm": "`SqlAssessments.from_mlflow_entity` (an ORM object each)",
              "rows": "the same function with `SqlAssessments` bound to `dict` (`_row_builder`)"}
    lines = ["## Assessment rows of a cached traced run (issue 17)", "", header(meta), "",
             f"{N:,} assessments (a cached 906-case traced run's), turned into table rows; "
             f"{a.repeats} fresh processes per way, alternating, the command's collector "
             "thresholds; median (min-max). The first round is what a command pays.", "",
             "| rows built by | first round | later rounds |", "|---|---:|---:|"]
    for mode, runs in got.items():
        first = summary([r[0] for r in runs])
        later = summary([x for r in runs for x in r[1:]])
        lines.append(f"| {labels[mode]} | {fmt_s(first['median'])} ({fmt_s(first['min'])}-"
                     f"{fmt_s(first['max'])}) | {fmt_s(later['median'])} |")
    gain = summary([r[0] for r in got["orm"]])["median"] - summary(
        [r[0] for r in got["rows"]])["median"]
    lines += ["", f"Saved per command: {fmt_s(gain)}, against a cached traced re-run of "
              "~11 s (BENCHMARKS \"end-to-end\")."]
    publish(SECTION, "\n".join(lines), write=not a.no_write)


if __name__ == "__main__":
    main()

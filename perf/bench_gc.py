"""Benchmark: the garbage collector's share of a command, Python's thresholds vs the command's.

`nova_mlflow.__main__.entry` raises the collector's thresholds for the command's process
(COMMAND_GC_THRESHOLDS). Here each measurement is one fresh `nova-mlflow evaluate` process
on the canned answers of the real-layout set (perf/synthetic.py), run through a small
wrapper that times every collection (gc.callbacks) and, for the "python default" rows, sets
COMMAND_GC_THRESHOLDS back to Python's (700, 10, 10) before calling `entry`. Each process
gets its own fresh store and cache (the score memo is cold: METEOR is computed); the two
settings alternate so machine load hits both alike. Wall time and peak RSS come from GNU
time (wait4), the collector's time from inside the process.

    python -m perf.bench_gc [--sizes 906,9060] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import PYTHON, ROOT, end_meta, fmt_s, header, new_meta, publish, summary, workdir

SECTION = "gc"
DEFAULT = (700, 10, 10)

WRAPPER = r"""
import gc, json, sys, time, atexit
import nova_mlflow.__main__ as m
mode, out = sys.argv[1], sys.argv[2]
if mode == "default":
    m.COMMAND_GC_THRESHOLDS = (700, 10, 10)
seen = {"s": 0.0, "n": 0, "gen2_s": 0.0, "gen2_n": 0}
began = {}
def timed(phase, info):
    if phase == "start":
        began["t"] = time.perf_counter()
        return
    d = time.perf_counter() - began["t"]
    seen["s"] += d
    seen["n"] += 1
    if info["generation"] == 2:
        seen["gen2_s"] += d
        seen["gen2_n"] += 1
gc.callbacks.append(timed)
atexit.register(lambda: open(out, "w").write(json.dumps(
    {**seen, "thresholds": list(gc.get_threshold())})))
sys.argv = ["nova-mlflow", *sys.argv[3:]]
m.entry()
"""


def one(mode: str, data: Path, answers: Path, tag: str) -> dict:
    base = workdir() / "gc" / tag
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    store = f"sqlite:///{base / 'mlflow.db'}"
    subprocess.run([PYTHON, "-c", "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
                    "mlflow.set_experiment('gc')", store], check=True, capture_output=True,
                   cwd=str(base))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NOVA_MLFLOW_"))}
    env.update({"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": store,
                "NOVA_MLFLOW_CACHE": str(base / "cache"), "GIT_PYTHON_REFRESH": "quiet"})
    stats, timing = base / "gc.json", base / "time.txt"
    cmd = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), PYTHON, "-c", WRAPPER, mode,
           str(stats), "evaluate", "--data", str(data), "--outputs", str(answers), "--model",
           "gpt-4o", "--experiment", "gc", "--run-name", tag]
    proc = subprocess.run(cmd, env=env, cwd=str(base), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stderr[-3000:]}")
    wall, peak_kb = timing.read_text().split()[-2:]
    got = json.loads(stats.read_text())
    shutil.rmtree(base, ignore_errors=True)
    return {**got, "wall": float(wall), "peak_mib": int(peak_kb) / 1024}


def measure(sizes: list[int], repeats: int) -> dict:
    from perf.synthetic import build, replay_file

    out: dict[str, dict[str, list[dict]]] = {}
    for n in sizes:
        data = build(n)
        answers = replay_file(data)
        rows = out.setdefault(str(n), {"default": [], "command": []})
        for i in range(repeats):
            for mode in ("default", "command"):
                r = one(mode, data, answers, f"{n}-{mode}-{i}")
                rows[mode].append(r)
                print(f"  {n} cases, {mode}: {r['wall']:.2f} s, gc {r['s']:.2f} s in "
                      f"{r['n']} collections, peak {r['peak_mib']:.0f} MiB", file=sys.stderr,
                      flush=True)
    return out


def render(res: dict, meta: dict) -> str:
    from nova_mlflow.__main__ import COMMAND_GC_THRESHOLDS

    lines = ["## Garbage collector: Python's thresholds vs the command's (issue 17)", "",
             header(meta), "",
             "Each row: fresh `nova-mlflow evaluate` processes on the canned answers of the "
             "real-layout set (the 906 x 3 or 9,060 x 3 answers; fresh store and cache, so "
             "METEOR is computed), the two settings alternating; median (min-max) over the "
             f"repeats. Python's default thresholds {DEFAULT} against the command's "
             f"{tuple(COMMAND_GC_THRESHOLDS)} (`nova_mlflow/__main__.py`; the Python API "
             "leaves its host's collector alone).", "",
             "| cases | thresholds | wall | time in the collector | collections (full) | "
             "peak RSS |", "|---:|---|---:|---:|---:|---:|"]
    for n, rows in res.items():
        for mode, label in (("default", f"Python's {DEFAULT}"),
                            ("command", f"command's {tuple(COMMAND_GC_THRESHOLDS)}")):
            rs = rows[mode]
            w, g = summary([r["wall"] for r in rs]), summary([r["s"] for r in rs])
            lines.append(
                f"| {int(n):,} | {label} | {fmt_s(w['median'])} ({fmt_s(w['min'])}-"
                f"{fmt_s(w['max'])}) | {fmt_s(g['median'])} | "
                f"{summary([r['n'] for r in rs])['median']:.0f} "
                f"({summary([r['gen2_n'] for r in rs])['median']:.0f}) | "
                f"{summary([r['peak_mib'] for r in rs])['median']:.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="906,9060")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    meta = new_meta("python -m perf.bench_gc " + " ".join(sys.argv[1:]))
    res = measure([int(s) for s in a.sizes.split(",")], a.repeats)
    publish(SECTION, render(res, end_meta(meta)), write=not a.no_write)


if __name__ == "__main__":
    main()

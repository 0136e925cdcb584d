"""Benchmark: whole commands as a user runs them (issue 17), against a floor process.

On the real-layout 906-case set (perf/synthetic.py: the real NOVA metadata from
../shared/data/nova-metadata, demo images made unique per case), each row is one fresh
`python -m nova_mlflow ...` process timed from start to exit (wall clock, and its peak RSS
from wait4), with the fake OpenAI server answering in `--latency` seconds (its own process,
canned answers) and `--concurrency 32`:

- floor: a process that imports mlflow and pandas, reads the metadata CSV, and logs one run
  with 100 metrics and a 1.5 MB artifact (the least any MLflow-tracked benchmark pays);
- live: `run --model gpt-4o` on an empty response cache (traces on: the default);
- live-no-traces: the same with `--no-traces`, on an empty cache of its own;
- cached-traces: the same command again, every answer from the response cache;
- cached-no-traces: the same with `--no-traces`;
- evaluate: `evaluate --outputs` of the 906 x 3 canned answers (the offline matcher), with
  the repeat's cache (whose score memo the runs above filled: the same captions);
- evaluate-new: the same with captions never scored before (each canned caption with a
  sentence added), so METEOR and BLEU are computed and nltk imported: what scoring new
  answers costs on a machine that has used this dataset (same cache: its PNGs are verified);
- help: `nova-mlflow --help`.

Each repeat uses a fresh sqlite store (created beforehand: MLflow's schema migrations are not
what is measured) and a fresh response cache, and runs the rows in the order above, so the
cached rows re-use what the live row of the same repeat stored (its cache and its traces).

`--package-root DIR` runs the commands on another checkout of the package (e.g. a worktree of
the branch point, for "before"); the benchmark code and the fake server stay this checkout's.
Results go to <work dir>/end_to_end-<label>.json; the "end-to-end" section of BENCHMARKS.md
shows every label saved there (before / after) side by side with the targets.

    python -m perf.end_to_end [--label after] [--repeats 3] [--package-root DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import (
    PYTHON,
    ROOT,
    end_meta,
    fmt_s,
    header,
    loadavg,
    new_meta,
    summary,
    workdir,
    publish,
)

SECTION = "end-to-end"
KEY = "sk-bench-0000000000"
ROWS = ("floor", "live", "live-no-traces", "cached-traces", "cached-no-traces", "evaluate",
        "evaluate-new", "help")
#: pre-round figures of the issue ("today", measured before WordNet was replaced)
ISSUE_TODAY = {"floor": 4.4, "live": 89.6, "cached-traces": 71.6, "cached-no-traces": 25.0,
               "evaluate": 19.1}

FLOOR = r"""
import sys, json, tempfile, os
from pathlib import Path
import mlflow
import pandas as pd
csv = sys.argv[1]
df = pd.read_csv(csv)
mlflow.set_experiment("floor")
with tempfile.TemporaryDirectory() as tmp:
    art = Path(tmp) / "artifact.json"
    text = df.to_json(orient="records")
    art.write_text((text * (1_500_000 // len(text) + 1))[:1_500_000])
    with mlflow.start_run(run_name="floor"):
        mlflow.log_metrics({f"m{i}": float(i) for i in range(100)})
        mlflow.log_artifact(str(art))
"""


def run_cmd(cmd: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run `cmd` to its end: wall seconds, its own peak RSS (MiB) and its output.

    The peak comes from GNU time's wait4 (`/usr/bin/time -f %M`): the wait4 of a child this
    process forks would count this process' own memory, copied at the fork.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rss = Path(tmp) / "maxrss"
        full = (["/usr/bin/time", "-f", "%M", "-o", str(rss)] if os.path.exists("/usr/bin/time")
                else []) + cmd
        t = time.perf_counter()
        proc = subprocess.run(full, env=env, cwd=str(cwd), capture_output=True,
                              stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        try:
            peak = int(rss.read_text().split()[-1]) / 1024
        except (OSError, ValueError, IndexError):
            peak = float("nan")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall": wall, "peak_mib": peak, "stdout": stdout[-2000:], "stderr": stderr[-6000:]}


def env_for(package_root: Path, store: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "NOVA_MLFLOW_", "OPENAI_"))}
    env.update({"PYTHONPATH": str(package_root), "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
                "NOVA_MLFLOW_CACHE": str(cache), "OPENAI_API_KEY": KEY,
                "GIT_PYTHON_REFRESH": "quiet", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def new_captions(answers: Path) -> Path:
    """The answers file with every caption changed (a sentence added): answers whose METEOR
    and BLEU no run of the repeat has computed."""
    out = answers.with_name("canned_answers_new_captions.jsonl")
    if not out.exists():
        lines = []
        for line in answers.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec["task"] == "captioning":
                rec["text"] += " Findings reviewed on every available sequence."
            lines.append(json.dumps(rec) + "\n")
        out.write_text("".join(lines), encoding="utf-8")
    return out


def one_repeat(i: int, a: argparse.Namespace, data: Path, answers: Path, server) -> dict:
    """Every row once, in order, on a fresh store and cache; {row: result}."""
    base = workdir() / "e2e" / f"{a.label}-{i}-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    store = base / "mlflow.db"
    subprocess.run([PYTHON, "-c", "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
                    "mlflow.set_experiment('e2e'); mlflow.set_experiment('floor')",
                    f"sqlite:///{store}"], check=True, capture_output=True, cwd=str(base))
    root = Path(a.package_root).resolve()
    env = env_for(root, store, base / "cache")
    py = [PYTHON, "-m", "nova_mlflow"]
    run = [*py, "run", "--model", "gpt-4o", "--data", str(data), "--concurrency",
           str(a.concurrency), "--base-url", server.base_url, "--no-progress",
           "--experiment", "e2e"]
    cmds = {
        "floor": ([PYTHON, "-c", FLOOR, str(data / "NOVA_metadata.csv")], env),
        "live": ([*run, "--run-name", "live"], env),
        "live-no-traces": ([*run, "--run-name", "live-no-traces", "--no-traces"],
                           env_for(root, store, base / "cache-untraced")),
        "cached-traces": ([*run, "--run-name", "cached-traces"], env),
        "cached-no-traces": ([*run, "--run-name", "cached-no-traces", "--no-traces"], env),
        "evaluate": ([*py, "evaluate", "--data", str(data), "--outputs", str(answers),
                      "--model", "gpt-4o", "--experiment", "e2e", "--run-name", "evaluate"], env),
        "evaluate-new": ([*py, "evaluate", "--data", str(data), "--outputs",
                          str(new_captions(answers)), "--model", "gpt-4o", "--experiment", "e2e",
                          "--run-name", "evaluate-new"], env),
        "help": ([*py, "--help"], env),
    }
    out = {}
    for row in ROWS:
        if row not in a.only:
            continue
        cmd, e = cmds[row]
        reps = a.help_repeats if row == "help" else 1
        for _ in range(reps):
            load = loadavg()
            before = server.requests()
            r = run_cmd(cmd, e, base)
            r["requests"] = server.requests() - before
            r["load"] = load
            r["logs"] = [ln for ln in r.pop("stderr").splitlines()
                         if "assessments" in ln or "linked" in ln or "traces" in ln][-5:]
            r.pop("stdout")
            out.setdefault(row, []).append(r)
            print(f"  [{a.label} {i + 1}/{a.repeats}] {row}: {r['wall']:.2f} s, "
                  f"{r['requests']} requests, peak {r['peak_mib']:.0f} MiB (load {load})",
                  file=sys.stderr, flush=True)
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return out


def measure(a: argparse.Namespace) -> dict:
    from perf.bench_throughput import Server
    from perf.synthetic import build, replay_file

    data = build(a.n)
    answers = replay_file(data)
    server = Server(a.latency, False)
    try:
        reps = [one_repeat(i, a, data, answers, server) for i in range(a.repeats)]
    finally:
        server.close()
    rows: dict[str, list[dict]] = {}
    for rep in reps:
        for row, rs in rep.items():
            rows.setdefault(row, []).extend(rs)
    return rows


# --- rendering -----------------------------------------------------------------------------

def _med(rows: dict, row: str, key: str = "wall") -> float | None:
    rs = rows.get(row)
    return summary([r[key] for r in rs])["median"] if rs else None


def _cell(rows: dict, row: str) -> str:
    rs = rows.get(row)
    if not rs:
        return "-"
    s = summary([r["wall"] for r in rs])
    ls = [float(r["load"].split(" / ")[0]) for r in rs]
    loads = ", ".join(f"{x:.1f}" for x in ls) if len(ls) <= 4 else f"{min(ls):.1f}-{max(ls):.1f}"
    if s["n"] == 1:
        return f"{fmt_s(s['median'])} (n=1; load {loads})"
    return (f"{fmt_s(s['median'])} ({fmt_s(s['min'])}-{fmt_s(s['max'])}, n={s['n']}; "
            f"load {loads})")


def targets(rows: dict, latency: float, concurrency: int) -> list[tuple[str, str, str, str]]:
    """(row, target, limit for these figures, met?) per row that has a target."""
    out = []
    floor, cnt = _med(rows, "floor"), _med(rows, "cached-no-traces")
    live_req = _med(rows, "live", "requests")
    if live_req is not None and cnt is not None:
        ideal = math.ceil(live_req / concurrency) * latency
        lim = 1.3 * ideal + cnt
        out.append(("live", f"<= 1.3 x ideal ({fmt_s(ideal)}: {int(live_req)} requests) + "
                    "cached no-trace run", fmt_s(lim), _met(_med(rows, "live"), lim)))
    if cnt is not None and "cached-traces" in rows:
        out.append(("cached-traces", "<= 1.5 x cached no-trace run", fmt_s(1.5 * cnt),
                    _met(_med(rows, "cached-traces"), 1.5 * cnt)))
    if floor is not None and cnt is not None:
        out.append(("cached-no-traces", "<= 3 x floor", fmt_s(3 * floor), _met(cnt, 3 * floor)))
    for row in ("evaluate", "evaluate-new"):
        if floor is not None and row in rows:
            out.append((row, "<= 2.5 x floor", fmt_s(2.5 * floor),
                        _met(_med(rows, row), 2.5 * floor)))
    if "help" in rows:
        out.append(("help", "< 0.5 s", "500 ms", _met(_med(rows, "help"), 0.5, strict=True)))
    return out


def _met(value: float | None, limit: float, strict: bool = False) -> str:
    if value is None:
        return "-"
    ok = value < limit if strict else value <= limit
    return f"{'yes' if ok else 'no'} ({fmt_s(value)})"


def render(saved: dict[str, dict], order: list[str]) -> str:
    labels = [lb for lb in order if lb in saved] + [lb for lb in saved if lb not in order]
    first = saved[labels[0]]["meta"]
    lines = ["## End to end: whole commands against a floor (issue 17)", "",
             f"`python -m perf.end_to_end`: {first['n']} cases of the real-layout set "
             "(perf/synthetic.py from ../shared/data/nova-metadata), gpt-4o through the fake "
             f"OpenAI server in its own process ({first['latency']} s per call, canned answers), "
             f"`--concurrency {first['concurrency']}`, sqlite store. Each row: one fresh "
             "`python -m nova_mlflow ...` process, wall clock from start to exit, peak RSS from "
             "wait4. A repeat runs the rows in this order on a fresh store and response cache "
             "(so `cached-*` re-use the cache and traces of that repeat's `live` row); median "
             "(min-max, n) over the repeats, with the 1-minute load average when each started "
             "(2 cores shared with other engineers' work: high load inflates the times).", ""]
    for lb in labels:
        m = saved[lb]["meta"]
        lines.append(f"- **{lb}** ({m.get('package', '?')}): " + header(m))
    lines += ["", "| command | issue's \"today\" (pre-round) | " + " | ".join(labels) + " |",
              "|---|---:|" + "---:|" * len(labels)]
    names = {"floor": "floor (import mlflow + pandas, read metadata, 1 run: 100 metrics, "
                      "1.5 MB artifact)",
             "live": "live run, traces on (empty cache)",
             "live-no-traces": "live run, `--no-traces` (empty cache)",
             "cached-traces": "cached re-run, traces on",
             "cached-no-traces": "cached re-run, `--no-traces`",
             "evaluate": "`evaluate` of 906 x 3 answers (the repeat's cache: memo warm)",
             "evaluate-new": "`evaluate` of 906 x 3 answers, captions never scored (memo cold)",
             "help": "`nova-mlflow --help`"}
    for row in ROWS:
        if not any(row in saved[lb]["rows"] for lb in labels):
            continue
        today = ISSUE_TODAY.get(row)
        lines.append(f"| {names[row]} | {fmt_s(today) if today else '-'} | "
                     + " | ".join(_cell(saved[lb]["rows"], row) for lb in labels) + " |")
    lines += ["", "Requests to the server per row (median): "
              + "; ".join(f"{lb}: " + ", ".join(
                  f"{row} {int(_med(saved[lb]['rows'], row, 'requests'))}"
                  for row in ROWS if row in saved[lb]["rows"] and row not in ("floor", "help"))
                  for lb in labels) + ".",
              "", "Peak RSS per row (median, MiB): "
              + "; ".join(f"{lb}: " + ", ".join(
                  f"{row} {_med(saved[lb]['rows'], row, 'peak_mib'):.0f}"
                  for row in ROWS if row in saved[lb]["rows"]) for lb in labels) + "."]
    for lb in labels:
        m = saved[lb]["meta"]
        t = targets(saved[lb]["rows"], m["latency"], m["concurrency"])
        if not t:
            continue
        lines += ["", f"Targets, {lb} (limits computed from that label's own floor and cached "
                  "no-trace medians):", "", "| row | target | limit | met? |", "|---|---|---:|---|"]
        lines += [f"| {r} | {tg} | {lim} | {ok} |" for r, tg, lim, ok in t]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="after")
    ap.add_argument("--package-root", default=str(ROOT))
    ap.add_argument("--n", type=int, default=906)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--help-repeats", type=int, default=5)
    ap.add_argument("--only", default=",".join(ROWS))
    ap.add_argument("--keep", action="store_true", help="keep each repeat's store and cache")
    ap.add_argument("--append", action="store_true",
                    help="add these repeats to the saved ones of the same label")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--order", default="before,after", help="column order of the labels")
    a = ap.parse_args()
    a.only = set(a.only.split(","))
    os.chdir(workdir())
    out = workdir() / f"end_to_end-{a.label}.json"
    if not a.render_only:
        root = Path(a.package_root).resolve()
        rev = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True).stdout.strip()[:70]
        meta = new_meta(("python -m perf.end_to_end " + " ".join(sys.argv[1:])).strip())
        meta.update(n=a.n, latency=a.latency, concurrency=a.concurrency, package=rev or str(root))
        rows = measure(a)
        end_meta(meta)
        if a.append and out.exists():  # more repeats of the same label (interleaved runs)
            saved = json.loads(out.read_text())
            for row, rs in rows.items():
                saved["rows"].setdefault(row, []).extend(rs)
            saved["meta"]["load_end"] = meta["load_end"]
            saved["meta"]["cmd"] += f"; then `{meta['cmd']}` at {meta['date']}"
            meta, rows = saved["meta"], saved["rows"]
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    saved = {p.stem.removeprefix("end_to_end-"): json.loads(p.read_text())
             for p in sorted(workdir().glob("end_to_end-*.json"))}
    body = render(saved, a.order.split(","))
    publish(SECTION, body, not a.no_write)


if __name__ == "__main__":
    main()

"""Benchmarks of nova_mlflow (not part of the pytest suite).

Helpers the throughput / scaling / logging benchmarks share: the machine description,
median-and-spread summaries, the isolated environment a benchmark runs in, and the writer
that replaces one marked section of BENCHMARKS.md while keeping every other section.

Run everything with `python -m perf.run_all` (or `python perf/run_all.py`).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import statistics
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
PYTHON = sys.executable


def workdir() -> Path:
    """Where datasets, caches and stores of the benchmarks live ($NOVA_BENCH_DIR or /tmp)."""
    d = Path(os.environ.get("NOVA_BENCH_DIR") or Path(tempfile.gettempdir()) / "nova-mlflow-bench")
    d.mkdir(parents=True, exist_ok=True)
    return d


def isolate(tag: str) -> dict[str, str]:
    """Point the package's cache and MLflow store at the bench work dir (never the user's)."""
    base = workdir()
    env = {
        "NOVA_MLFLOW_CACHE": str(base / "cache"),  # WordNet copy, demo set, run dirs
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'stores' / tag / 'mlflow.db'}",
        "OPENAI_API_KEY": "sk-bench-0000000000",  # the fake server's key, not a real one
        "GIT_PYTHON_REFRESH": "quiet",
    }
    (base / "stores" / tag).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
                "OPENAI_BASE_URL"):
        os.environ.pop(var, None)
    os.chdir(base)  # the package writes ./mlflow.db only when the URI is unset; be safe anyway
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return float("nan")


def _v(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> str:
    """One line: CPU, cores, RAM, OS, Python and the versions that matter here."""
    return (f"{_cpu_model()}, {os.cpu_count()} logical cores, {_ram_gib():.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"mlflow {_v('mlflow')}, openai {_v('openai')}, pandas {_v('pandas')}, "
            f"nova-mlflow {_v('nova-mlflow')}")


def today() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


def fmt_s(x: float) -> str:
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1000:.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


def spread(xs: list[float]) -> str:
    """'median (min-max, n=k)' in seconds."""
    s = summary(xs)
    if s["n"] == 1:
        return f"{fmt_s(s['median'])} (n=1)"
    return f"{fmt_s(s['median'])} ({fmt_s(s['min'])}-{fmt_s(s['max'])}, n={s['n']})"


def publish(name: str, body: str, write: bool = True) -> None:
    """Print a benchmark's section and (unless its run said --no-write) put it into
    BENCHMARKS.md."""
    print(body)
    if write:
        write_section(name, body)


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the text between <!-- name:start --> and <!-- name:end -->, or append it.

    Everything outside the markers (other people's sections) is kept byte for byte.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS so far) of this process in MiB, from /proc (Linux)."""
    cur = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return cur, peak


def init_store(tag: str, experiment: str = "bench") -> float:
    """Create the sqlite store and experiment of `tag` in a subprocess (schema migrations
    take seconds on a fresh file and are not what a benchmark measures); returns seconds."""
    import subprocess
    import time

    uri = f"sqlite:///{workdir() / 'stores' / tag / 'mlflow.db'}"
    (workdir() / "stores" / tag).mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
                    "mlflow.set_experiment(sys.argv[2])", uri, experiment],
                   check=True, capture_output=True, cwd=str(workdir()))
    return time.perf_counter() - t


def new_meta(cmd: str) -> dict:
    """What a section's first line says about its run; finished by `end_meta`."""
    return {"cmd": cmd, "date": today(), "machine": machine(), "load_start": loadavg()}


def end_meta(meta: dict) -> dict:
    meta["load_end"] = loadavg()
    return meta


def header(meta: dict, tail: str = "(a shared machine: other work inflates the times).") -> str:
    return (f"`{meta['cmd']}`, run {meta['date']} on {meta['machine']}. Load average "
            f"(1/5/15 min) at the start {meta['load_start']}, at the end "
            f"{meta.get('load_end', '?')} {tail}")

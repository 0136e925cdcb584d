"""`nova-mlflow compare`: select runs, check they are comparable, read their per-case tables,
compare them (analysis/), print, log a comparison run.

Shared with `gate` and `sweep`: reading the tables of runs (`read_tables`), the refusal of
runs that are not comparable (`check_comparable`) and the statistics options.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nova_mlflow.analysis import comparable
from nova_mlflow.analysis.comparison import CLUSTER, StatsConfig, compare_tables
from nova_mlflow.analysis.metric_specs import SKIPPED, SPECS
from nova_mlflow.config import CompareConfig
from nova_mlflow.errors import InputError
from nova_mlflow.paths import cache_dir
from nova_mlflow.report.compare import CompareResult, text_table, write_files
from nova_mlflow.tracking import registry as reg
from nova_mlflow.tracking.registry import LoggedTable, RunRecord

log = logging.getLogger("nova_mlflow")

DEFAULT_EXPERIMENT = "nova-demo"  # where `nova-mlflow run` logs by default
SKIP_KINDS = {"compare", "gate"}  # runs made by these commands hold no per-case tables
RunTables = dict[str, dict[str, LoggedTable]]  # run id -> task -> logged table


def parse_metric_flags(flags: Sequence[str]) -> list[str]:
    """Repeated and/or comma-separated --metric values; unknown keys are InputErrors."""
    keys = list(dict.fromkeys(k.strip() for f in flags for k in f.split(",") if k.strip()))
    bad = [k for k in keys if k not in SPECS and k not in SKIPPED]
    if bad:
        raise InputError(f"--metric {bad[0]}: unknown metric; the resampled metrics are "
                         f"{', '.join(SPECS)}")
    return keys


def select_runs(cfg: CompareConfig) -> tuple[list[RunRecord], int]:
    """The runs to compare and the index of the baseline among them."""
    if cfg.runs:
        runs = [reg.get_run(r) for r in dict.fromkeys(cfg.runs)]
        for r in runs:
            if not reg.table_tasks(r.run_id):
                raise InputError(f"--run {r.run_id}: run {r.label} has no per-case tables "
                                 "(tables/*_cases.json): a sweep parent or a failed run?")
    else:
        name = cfg.experiment or DEFAULT_EXPERIMENT
        _, found = reg.experiment_runs(name)
        runs = [r for r in found if r.tags.get("nova.sweep") != "parent"
                and r.tags.get("nova.kind") not in SKIP_KINDS and reg.table_tasks(r.run_id)]
        if not runs:
            raise InputError(f"--experiment {name!r}: no finished run with per-case tables")
    if cfg.baseline is None:
        return runs, 0
    ids = [r.run_id for r in runs]
    if cfg.baseline in ids:
        return runs, ids.index(cfg.baseline)
    return [reg.get_run(cfg.baseline), *runs], 0


def read_tables(runs: Sequence[RunRecord]) -> RunTables:
    """Every per-case table of every run, as logged (content and sha256)."""
    out: RunTables = {}
    for r in runs:
        out[r.run_id] = {}
        for task in sorted(reg.table_tasks(r.run_id)):
            table = reg.download_table(r.run_id, task)
            if table is not None:
                out[r.run_id][task] = table
    return out


def frames(tables: RunTables) -> dict[str, dict[str, pd.DataFrame]]:
    """The logged tables as DataFrames (what analysis/ reads); a table without `case_id`
    (logged before cases were clusters) cannot be resampled and is left out."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for run_id, by_task in tables.items():
        out[run_id] = {}
        for task, t in by_task.items():
            df = pd.DataFrame(t.content.get("data", []), columns=t.content.get("columns", []))
            if {"filename", CLUSTER} <= set(df.columns):
                out[run_id][task] = df
            else:
                log.warning("run %s: its %s table has no %s column; not compared", run_id, task,
                            CLUSTER)
    return out


def check_comparable(runs: Sequence[RunRecord], tasks: dict[str, set[str]],
                     allow_mismatch: bool) -> list[str]:
    """What differs between the runs (analysis/comparable.py); InputError (exit 2) unless
    `allow_mismatch`, in which case the differences are logged and returned."""
    diagnosis = all("diagnosis" in tasks.get(r.run_id, set()) for r in runs)
    found = comparable.mismatches({r.label: comparable.identity(r.params, r.tags, diagnosis)
                                   for r in runs})
    if found and not allow_mismatch:
        raise InputError("runs are not comparable: " + "; ".join(found)
                         + " (--allow-mismatch compares them anyway)")
    for m in found:
        log.warning("not comparable, compared anyway (--allow-mismatch): %s", m)
    return found


def stats_config(cfg: CompareConfig, metrics: Sequence[str]) -> StatsConfig:
    return StatsConfig(resamples=cfg.resamples, seed=cfg.seed, adjust=cfg.adjust,
                       alpha=cfg.alpha, p_method=cfg.p_method, metrics=tuple(metrics))


def compare_runs(runs: list[RunRecord], baseline: int, cfg: CompareConfig) -> CompareResult:
    """Check, read and compare (nothing printed or logged)."""
    metrics = parse_metric_flags(cfg.metrics)
    tables = read_tables(runs)
    mismatches = check_comparable(runs, {r: set(t) for r, t in tables.items()},
                                  cfg.allow_mismatch)
    try:
        comp = compare_tables(frames(tables), runs[baseline].run_id, stats_config(cfg, metrics))
    except ValueError as exc:  # tables that disagree on the cases' clusters
        raise InputError(f"cannot compare: {exc}") from None
    if not comp.metrics:
        why = "; ".join(f"{k}: {v}" for k, v in comp.skipped.items())
        raise InputError(f"nothing to compare: no metric can be computed for every run ({why})")
    return CompareResult(comp, {r.run_id: r.run_name for r in runs},
                         {r.run_id: dict(r.metrics) for r in runs}, mismatches)


def log_comparison(res: CompareResult, experiment_id: str, out_dir: Path) -> str:
    """A run tagged nova.kind=compare holding the comparison's files."""
    comp = res.comparison
    files = write_files(res, out_dir)
    tags = {"nova.kind": "compare", "nova.baseline_run": res.baseline,
            "nova.compared_runs": ",".join(comp.run_ids)}
    if res.mismatches:
        tags["nova.mismatches"] = "; ".join(res.mismatches)
    c = comp.config
    return reg.log_run(experiment_id, f"compare {len(comp.run_ids)} runs vs "
                       f"{res.names.get(res.baseline) or res.baseline[:8]}", files, tags,
                       {"baseline_run_id": res.baseline, "metrics": ",".join(comp.metrics),
                        "resamples": c.resamples, "seed": c.seed, "adjust": c.adjust,
                        "p_method": c.p_method, "cluster": CLUSTER, "n_clusters": comp.n_clusters,
                        "allow_mismatch": bool(res.mismatches)})


def run_compare(cfg: CompareConfig) -> CompareResult:
    """Select, compute, print (stderr), and log a run tagged nova.kind=compare (unless --no-log)."""
    parse_metric_flags(cfg.metrics)  # a bad flag fails before any run is read
    runs, baseline = select_runs(cfg)
    res = compare_runs(runs, baseline, cfg)
    log.info("\n%s", text_table(res))
    if cfg.log:
        with tempfile.TemporaryDirectory(prefix="nova-compare-", dir=tmp_root()) as tmp:
            res.compare_run_id = log_comparison(res, runs[baseline].experiment_id, Path(tmp))
        log.info("comparison logged as run %s", res.compare_run_id)
    return res


def tmp_root() -> Path:
    d = cache_dir() / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d

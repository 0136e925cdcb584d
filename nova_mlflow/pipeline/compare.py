"""`nova-mlflow compare`: select runs, read their per-case tables, compare, print and log."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from nova_mlflow.analysis.compare import BOOTSTRAP_METRICS, Comparison, build, case_values, parse_metric_flags
from nova_mlflow.config import CompareConfig
from nova_mlflow.errors import InputError
from nova_mlflow.paths import cache_dir
from nova_mlflow.report.compare import text_table, write_files
from nova_mlflow.tracking import registry as reg
from nova_mlflow.tracking.registry import RunRecord

log = logging.getLogger("nova_mlflow")

DEFAULT_EXPERIMENT = "nova-demo"  # where `nova-mlflow run` logs by default
SKIP_KINDS = {"compare", "gate"}  # runs made by these commands hold no per-case tables


class TableReader:
    """Per-case values of runs, downloading each (run, task) table once."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], dict | None] = {}

    def values(self, run_id: str, metric: str) -> dict[str, float] | None:
        task, column = BOOTSTRAP_METRICS[metric]
        key = (run_id, task)
        if key not in self._tables:
            self._tables[key] = reg.download_table(run_id, task)
        table = self._tables[key]
        return None if table is None else case_values(table, column)


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



def run_compare(cfg: CompareConfig) -> Comparison:
    """Select, compute, print (stderr), and log a run tagged nova.kind=compare (unless --no-log)."""
    metrics = parse_metric_flags(cfg.metrics)
    runs, baseline = select_runs(cfg)
    comp = build(runs, baseline, metrics, TableReader(), cfg.resamples, cfg.seed)
    log.info("\n%s", text_table(comp))
    if cfg.log:
        base = comp.runs[comp.baseline]
        with tempfile.TemporaryDirectory(prefix="nova-compare-", dir=_tmp_root()) as tmp:
            files = write_files(comp, Path(tmp))
            comp.compare_run_id = reg.log_run(
                base.experiment_id, f"compare {len(runs)} runs vs {base.run_name or base.run_id[:8]}",
                files, {"nova.kind": "compare", "nova.baseline_run": base.run_id,
                        "nova.compared_runs": ",".join(r.run_id for r in comp.runs)},
                {"baseline_run_id": base.run_id, "metrics": ",".join(m.metric for m in comp.metrics),
                 "resamples": comp.resamples, "seed": comp.seed})
        log.info("comparison logged as run %s", comp.compare_run_id)
    return comp


def _tmp_root() -> Path:
    d = cache_dir() / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d

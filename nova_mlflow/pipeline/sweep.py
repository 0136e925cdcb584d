"""A sweep: one parent MLflow run, one child run per model x prompt-version combination.

Every combination is checked (frames, keys, prompt files) and the dataset is loaded once,
before the parent run opens. A child that fails is marked FAILED and the sweep goes on; the
sweep's exit code is the worst child's. The parent holds a table of the children's headline
metrics and their comparison (`compare` over the finished children, the first as baseline:
compare/ and results/report.html with the table and the forest plot of deltas).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd

from nova_mlflow import tracking
from nova_mlflow.config import CompareConfig, SweepConfig
from nova_mlflow.data import load_dataset
from nova_mlflow.errors import InputError, NovaError
from nova_mlflow.paths import cache_dir
from nova_mlflow.pipeline.compare import compare_runs
from nova_mlflow.pipeline.results import RunSummary
from nova_mlflow.pipeline.run import run
from nova_mlflow.pipeline.setup import check_config, default_experiment
from nova_mlflow.report import write_table
from nova_mlflow.report.compare import html_section, write_files
from nova_mlflow.report.html import build_page
from nova_mlflow.report.tables import table_html
from nova_mlflow.schemas import Task
from nova_mlflow.tracking import registry as reg

log = logging.getLogger("nova_mlflow")

HEADLINE = ["localization/mAP30", "localization/mAP50", "localization/coco_mAP50",
            "captioning/clinical_f1", "captioning/modality_f1", "captioning/bleu",
            "captioning/meteor", "diagnosis/top1", "diagnosis/top5"]


def prompt_grid(flags: dict[Task, list[str]], tasks: tuple[Task, ...]) -> list[dict[Task, str]]:
    """Cartesian product of the versions given per task (v1 where a task got none)."""
    axes = [[(t, v) for v in (flags.get(t) or ["v1"])] for t in tasks]
    return [dict(combo) for combo in itertools.product(*axes)]


def parse_prompt_lists(flags: list[str] | tuple[str, ...]) -> dict[Task, list[str]]:
    """Repeated `--prompt TASK=VERSION` flags; the same task may appear several times."""
    out: dict[Task, list[str]] = {}
    for flag in (p.strip() for f in flags for p in f.split(",") if p.strip()):
        task, sep, version = flag.partition("=")
        try:
            t = Task(task.strip())
        except ValueError:
            raise InputError(f"--prompt {flag!r}: unknown task {task!r}") from None
        if not sep or not version.strip():
            raise InputError(f"--prompt {flag!r}: expected TASK=VERSION, e.g. diagnosis=v2")
        out.setdefault(t, [])
        if version.strip() not in out[t]:
            out[t].append(version.strip())
    return out


@dataclass
class SweepSummary:
    parent_run_id: str
    children: list[RunSummary] = field(default_factory=list)
    failures: list[tuple[str, NovaError]] = field(default_factory=list)


def sweep(cfg: SweepConfig) -> SweepSummary:
    """Every model x prompt-version combination as a child run of one parent run."""
    base, models, prompt_flags = cfg.run, cfg.models, cfg.prompt_grid
    configs = [base.model_copy(update={"model": m, "prompts": p, "run_name": None})
               for m in dict.fromkeys(models) for p in prompt_grid(prompt_flags, base.tasks)]
    for child_cfg in configs:
        check_config(child_cfg)
    dataset = load_dataset(base.data, images_dir=base.images)
    name = base.run_name or f"sweep {len(configs)} runs: {', '.join(dict.fromkeys(models))}"
    rows = []
    with tracking.start_run(base.experiment or default_experiment(dataset), name,
                            {"nova.sweep": "parent", "nova.dataset_digest": dataset.digest}) as parent:
        parent.params({"models": ",".join(dict.fromkeys(models)), "n_children": len(configs),
                       "data": base.data, "dataset_digest": dataset.digest,
                       **{f"prompt_grid.{t.value}": ",".join(v) for t, v in prompt_flags.items()}})
        summary = SweepSummary(parent.run_id)
        for i, child_cfg in enumerate(configs, start=1):
            label = f"{child_cfg.model} " + "+".join(
                f"{t.value[:3]}-{v}" for t, v in sorted(child_cfg.prompts.items(),
                                                        key=lambda kv: kv[0].value))
            log.info("sweep %d/%d: %s", i, len(configs), label)
            try:
                child = run(child_cfg, dataset)
            except NovaError as exc:
                log.error("sweep child %s failed: %s", label, exc)
                summary.failures.append((label, exc))
                rows.append({"run": label, "status": "FAILED", "error": str(exc)[:200]})
                continue
            summary.children.append(child)
            rows.append({"run": label, "status": "FINISHED", "run_id": child.run_id,
                         **{k: round(child.metrics[k], 4) for k in HEADLINE if k in child.metrics}})
        out = cache_dir() / "runs" / parent.run_id
        summary_df = pd.DataFrame(rows)
        for f in write_table(summary_df, "sweep_summary", out, f"Sweep: {name}"):
            parent.artifact(f, "results")
        sections = [("Runs", table_html(summary_df)),
                    ("Comparison of the runs", _compare_children(parent, summary, out))]
        parent.artifact(build_page(out, f"Sweep: {name}", sections), "results")
        parent.metrics({"sweep/children": float(len(configs)),
                        "sweep/failed": float(len(summary.failures))})
    if summary.failures:
        worst = max(summary.failures, key=lambda f: f[1].exit_code)[1]
        raise type(worst)(f"{len(summary.failures)} of {len(configs)} sweep runs failed; first: "
                          f"{summary.failures[0][0]}: {summary.failures[0][1]}")
    return summary


def _compare_children(parent: tracking.RunLogger, summary: SweepSummary, out: Path) -> str:
    """`compare` over the finished children (the first is the baseline), logged under the
    parent's compare/; the HTML fragment of its report (or why there is none)."""
    if not summary.children:
        return "<p>No child run finished: nothing to compare.</p>"
    runs = [reg.get_run(c.run_id) for c in summary.children]
    try:
        res = compare_runs(runs, 0, CompareConfig(runs=[r.run_id for r in runs], log=False))
    except InputError as exc:
        log.warning("sweep: the children were not compared: %s", exc)
        return f"<p>Not compared: {escape(str(exc))}</p>"
    files = write_files(res, out / "compare")
    parent.artifacts(out / "compare", "compare")  # the layout write_files gives, in one upload
    forest = [p for p, _ in files if p.name == "forest.png"]
    return html_section(res, forest)

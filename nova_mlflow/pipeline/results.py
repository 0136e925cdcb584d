"""Answers -> scores -> everything a run logs about them (metrics, tables, files).

Shared by `run`, `evaluate` and `sync`: scoring and logging happen the same way whoever
produced the answers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from nova_mlflow import tracking
from nova_mlflow.data import Dataset
from nova_mlflow.memo import ScoreMemo
from nova_mlflow.metrics.usage import usage_metrics
from nova_mlflow.paths import cache_dir
from nova_mlflow.pricing import PriceTable
from nova_mlflow.report import markdown_table, write_artifacts
from nova_mlflow.report.html import build_report
from nova_mlflow.schemas import (
    SCHEMA_VERSION,
    Answer,
    CaptionPrediction,
    Case,
    DiagnosisPrediction,
    LocalizationPrediction,
    Task,
)
from nova_mlflow.scoring import ScoreContext, Scores, score

#: Record types whose JSON Schema each run logs (schemas/<name>.v<N>.schema.json).
SCHEMA_MODELS = {"answer": Answer, "localization_prediction": LocalizationPrediction,
                 "caption_prediction": CaptionPrediction,
                 "diagnosis_prediction": DiagnosisPrediction}


@dataclass
class RunSummary:
    """What a finished run gives back to a caller (the CLI, the Python API, a sweep)."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    scores: Scores
    answers_path: Path
    dataset: Dataset


@dataclass
class Scoring:
    """How a set of answers is scored: cases, tasks, frame/judge/model, prices (None for
    answers produced elsewhere: no token counts to price)."""

    cases: list[Case]
    tasks: tuple[Task, ...]
    context: ScoreContext
    prices: PriceTable | None = None
    use_memo: bool = True  # read and keep METEOR/BLEU values in <cache>/scores.sqlite (memo.py)


@dataclass
class Header:
    """The title and params shown at the top of a run's report."""

    title: str
    params: Mapping[str, object] = field(default_factory=dict)


def score_answers(scoring: Scoring, answers: Mapping[tuple[str, Task], Answer]) -> Scores:
    """Per-task scores, plus usage (tokens, cost, latency) and the judge's own usage."""
    ctx, memo = scoring.context, None
    if scoring.use_memo and ctx.memo is None and Task.captioning in scoring.tasks:
        memo = ScoreMemo.open(cache_dir())
        ctx = replace(ctx, memo=memo)
    try:
        scores = score(scoring.cases, answers, scoring.tasks, ctx)
    finally:
        if memo is not None:
            memo.close()
    if scoring.prices is not None:
        for task, ts in scores.tasks.items():
            ts.metrics.update(usage_metrics([a for a in answers.values() if a.task is task],
                                            scoring.context.model, scoring.prices))
    judge = scoring.context.matcher
    if judge is not None and hasattr(judge, "metrics") and Task.diagnosis in scores.tasks:
        scores.tasks[Task.diagnosis].metrics.update(judge.metrics(scoring.prices))
    return scores


def log_results(run: tracking.RunLogger, scores: Scores, cases: list[Case], answers_path: Path,
                header: Header, run_metrics: Mapping[str, float] | None = None) -> None:
    """Metrics + per-case tables, then the files of the run.

    Everything that goes under results/ is written into one local folder first and uploaded
    with one call: the summary, Tables 1-3, Figures 4-6 and the HTML report.
    """
    metrics = scores.metrics
    out_dir = answers_path.parent / "report"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir()
    run.results({**(run_metrics or {}), **metrics},
                {f"tables/{task.value}_cases.json": ts.table for task, ts in scores.tasks.items()})
    run.artifact(answers_path, "answers")
    schemas = answers_path.parent / "schemas"
    schemas.mkdir(exist_ok=True)
    for name, model in SCHEMA_MODELS.items():
        (schemas / f"{name}.v{SCHEMA_VERSION}.schema.json").write_text(
            json.dumps(model.model_json_schema(), indent=2), encoding="utf-8")
    run.artifacts(schemas, "schemas")
    (out_dir / "summary.md").write_text(markdown_table(metrics, header.title), encoding="utf-8")
    sections = write_artifacts(scores, cases, out_dir)
    build_report(out_dir, metrics, header.title, header.params, sections)
    run.artifacts(out_dir, "results")

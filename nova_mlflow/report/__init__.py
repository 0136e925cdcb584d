"""What people read: terminal and Markdown summaries, Tables 1-3 beside the paper's rows,
the splits, Figures 4-6 and the one-page HTML report. Reads scores; never computes metrics.

`write_artifacts` writes every task's files into a run's results folder and returns the
sections of its report.
"""

from __future__ import annotations

from pathlib import Path

from nova_mlflow.report.tables import (
    SOURCE_OURS,
    SOURCE_PAPER,
    Section,
    markdown_table,
    paper_table,
    text_table,
    write_table,
)
from nova_mlflow.schemas import Case, Task
from nova_mlflow.scoring.common import Scores


def write_artifacts(scores: Scores, cases: list[Case], out_dir: Path) -> list[Section]:
    """Tables, splits and figures of every scored task under out_dir; their report sections."""
    from nova_mlflow.report import captioning, diagnosis, localization

    modules = {Task.localization: localization, Task.captioning: captioning,
               Task.diagnosis: diagnosis}
    return [modules[task].artifacts(ts, cases, out_dir) for task, ts in scores.tasks.items()]


__all__ = ["SOURCE_OURS", "SOURCE_PAPER", "Section", "markdown_table", "paper_table",
           "text_table", "write_artifacts", "write_table"]

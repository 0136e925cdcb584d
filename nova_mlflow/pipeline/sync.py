"""`nova-mlflow sync`: log the results a run kept on disk when its server was unreachable.

It re-scores the kept answers (no model call; judge verdicts come from their store) and logs
the results into the same run, then marks it FINISHED.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from nova_mlflow import tracking
from nova_mlflow.config import RunConfig
from nova_mlflow.data import load_dataset
from nova_mlflow.data.answers import latest_answers
from nova_mlflow.pipeline import setup
from nova_mlflow.pipeline.pending import pending_runs
from nova_mlflow.pipeline.results import Header, Scoring, log_results, score_answers
from nova_mlflow.pricing import load_prices
from nova_mlflow.scoring import ScoreContext, Scores
from nova_mlflow.tracking.traces import Tracer

log = logging.getLogger("nova_mlflow")


def log_pending_run(run_id: str, cfg: RunConfig, answers_path: Path, title: str) -> Scores:
    """The results of a run whose server was away, logged into that run."""
    frame, _ = setup.check_config(cfg)
    judge = setup.make_judge(cfg.judge, cfg.concurrency, cfg.retry)
    dataset = load_dataset(cfg.data, images_dir=cfg.images).limited(cfg.limit)
    answers = latest_answers(answers_path)
    with tracking.resume_run(run_id) as run:
        params = dict(tracking.get_run(run_id).data.params)
        if judge is not None and cfg.traces:  # the judge's calls are traces of the run
            judge.tracer = Tracer(run.run_id, run.experiment_id, cfg.model, {}, frame)
        scores = score_answers(Scoring(dataset.cases, cfg.tasks,
                                       ScoreContext(frame, cfg.judge, cfg.model, matcher=judge),
                                       load_prices(cfg.prices)), answers)
        log_results(run, scores, dataset.cases, answers_path, Header(title, params),
                    {"run/synced": 1.0})
    return scores


def sync_all(root: Path | None = None) -> list[str]:
    """Log every pending run; returns the run ids logged. A run still unreachable stays pending."""
    done = []
    for path in pending_runs(root):
        info = json.loads(path.read_text(encoding="utf-8"))
        os.environ.setdefault("MLFLOW_TRACKING_URI", info["tracking_uri"])
        cfg = RunConfig.model_validate(info["config"])
        log_pending_run(info["run_id"], cfg, path.parent / "answers.jsonl", info["title"])
        path.unlink()
        done.append(info["run_id"])
        log.info("synced run %s", info["run_id"])
    return done

"""`nova-mlflow sync`: log the results a run kept on disk when its server was unreachable.

It re-scores the kept answers (no model call; judge verdicts come from their store) and logs
the results into the same run, then marks it FINISHED. Each pending run goes to the tracking
server recorded with it, whatever MLFLOW_TRACKING_URI says now and whichever run came before
(runs of a team can wait for different servers). A server still unreachable leaves its runs
pending; the others are synced, and the command then exits 3 naming what is left.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nova_mlflow import tracking
from nova_mlflow.config import RunConfig
from nova_mlflow.data import load_dataset
from nova_mlflow.data.answers import latest_answers
from nova_mlflow.pipeline import setup
from nova_mlflow.pipeline.pending import TrackingUnavailable, pending_runs
from nova_mlflow.pipeline.results import Header, Scoring, log_results, score_answers
from nova_mlflow.pricing import load_prices
from nova_mlflow.scoring import ScoreContext, Scores
from nova_mlflow.tracking.runs import PENDING_SYNC_TAG
from nova_mlflow.tracking.traces import Tracer

log = logging.getLogger("nova_mlflow")
URI_VAR = "MLFLOW_TRACKING_URI"


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
        run.clear_tag(PENDING_SYNC_TAG)
    return scores


@contextmanager
def tracking_server(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI set to `uri` for the block, then restored (or unset) again."""
    before = os.environ.get(URI_VAR)
    os.environ[URI_VAR] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(URI_VAR, None)
        else:
            os.environ[URI_VAR] = before


def sync_all(root: Path | None = None) -> list[str]:
    """Log every pending run into its own tracking server; returns the run ids logged.

    A run whose server is still unreachable stays pending; once the others are done this
    raises TrackingUnavailable (exit 3) naming the runs left.
    """
    done, left = [], []
    for path in pending_runs(root):
        info = json.loads(path.read_text(encoding="utf-8"))
        cfg = RunConfig.model_validate(info["config"])
        with tracking_server(info["tracking_uri"]):
            try:
                log_pending_run(info["run_id"], cfg, path.parent / "answers.jsonl",
                                info["title"])
            except Exception as exc:
                if not tracking.is_unreachable(exc):
                    raise
                log.warning("run %s: %s is still unreachable; it stays pending",
                            info["run_id"], info["tracking_uri"])
                left.append(f"{info['run_id']} ({info['tracking_uri']})")
                continue
        path.unlink()
        done.append(info["run_id"])
        log.info("synced run %s to %s", info["run_id"], info["tracking_uri"])
    if left:
        raise TrackingUnavailable(f"synced {len(done)} run(s); {len(left)} still wait for "
                                  f"their tracking server: {', '.join(left)}; run `nova-mlflow "
                                  "sync` again once it is back")
    return done

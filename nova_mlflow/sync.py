"""Results kept on disk when the tracking server was unreachable, logged later by `sync`.

When logging fails because the server is gone, the run's directory in the cache keeps the
answers (already there) plus `pending.json`: the run id, the tracking URI and the run's
configuration. `nova-mlflow sync` re-scores those answers (no model call; judge verdicts come
from their cache) and logs the results into the same run, then marks it FINISHED.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nova_mlflow.errors import NovaError
from nova_mlflow.paths import cache_dir

log = logging.getLogger("nova_mlflow")
PENDING = "pending.json"


class TrackingUnavailable(NovaError):
    """The tracking server went away; everything computed is on disk. Exit 3."""

    exit_code = 3


def save_pending(run_dir: Path, *, run_id: str, tracking_uri: str, config: dict,
                 title: str) -> Path:
    path = run_dir / PENDING
    path.write_text(json.dumps({"run_id": run_id, "tracking_uri": tracking_uri,
                                "config": config, "title": title}, indent=2), encoding="utf-8")
    return path


def pending_runs(root: Path | None = None) -> list[Path]:
    base = (root or cache_dir()) / "runs"
    return sorted(base.glob(f"*/{PENDING}")) if base.exists() else []


def sync_all(root: Path | None = None) -> list[str]:
    """Log every pending run; returns the run ids logged. A run still unreachable stays pending."""
    import os

    from nova_mlflow.benchmark import RunConfig, log_pending_run

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

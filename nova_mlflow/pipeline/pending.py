"""Results kept on disk when the tracking server was unreachable, until `sync` logs them.

When logging fails because the server is gone, the run's directory in the cache keeps the
answers (already there) plus `pending.json`: the run id, the tracking URI and the run's
configuration. The orphan check of later runs (tracking.runs.fail_orphaned_runs) leaves
such a run RUNNING, tagged `nova.pending_sync`, instead of marking it FAILED.
"""

from __future__ import annotations

import json
from pathlib import Path

from nova_mlflow.errors import NovaError
from nova_mlflow.paths import PENDING, cache_dir


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

"""Where the package keeps files between runs (demo set, answers of each run, caches).

The cache follows the platform's convention, as platformdirs resolves it
($XDG_CACHE_HOME/nova_mlflow, else ~/.cache/nova_mlflow on Linux; ~/Library/Caches on
macOS; %LOCALAPPDATA% on Windows); $NOVA_MLFLOW_CACHE wins over all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "nova_mlflow"
PENDING = "pending.json"  # in a run's directory: its results wait for `nova-mlflow sync`


def cache_dir() -> Path:
    """$NOVA_MLFLOW_CACHE, else the platform's user cache directory for nova_mlflow."""
    env = os.environ.get("NOVA_MLFLOW_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP, appauthor=False))


def run_dir(run_id: str) -> Path:
    d = cache_dir() / "runs" / run_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def pending_file(run_id: str) -> Path:
    """Where a run whose tracking server went away keeps what `sync` needs (may not exist)."""
    return cache_dir() / "runs" / run_id / PENDING

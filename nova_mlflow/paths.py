"""Where the package keeps files between runs (demo set, answers of each run, caches)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$NOVA_MLFLOW_CACHE, else ~/.cache/nova_mlflow."""
    env = os.environ.get("NOVA_MLFLOW_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nova_mlflow"


def run_dir(run_id: str) -> Path:
    d = cache_dir() / "runs" / run_id
    d.mkdir(parents=True, exist_ok=True)
    return d

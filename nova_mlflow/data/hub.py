"""hf://owner/name: download the parquet release through huggingface_hub (optional extra)."""

from __future__ import annotations

import os
from pathlib import Path

from nova_mlflow.errors import InputError


def download(repo_id: str, cache_dir: Path | None = None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError("hf:// datasets need huggingface_hub: pip install 'nova-mlflow[hf]'",
                         file=f"hf://{repo_id}") from None
    target = Path(cache_dir or os.environ.get("NOVA_MLFLOW_CACHE") or Path.home() / ".cache/nova_mlflow")
    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset",
                                      cache_dir=str(target / "hf")))
    except Exception as exc:  # network errors, missing repo, offline mode
        raise InputError(f"could not download the dataset ({type(exc).__name__}); without a "
                         "network, download it elsewhere and pass --data DIR",
                         file=f"hf://{repo_id}") from None

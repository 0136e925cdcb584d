"""hf://owner/name: download the parquet release through huggingface_hub (optional extra)."""

from __future__ import annotations

from pathlib import Path

from nova_mlflow.errors import InputError
from nova_mlflow.paths import cache_dir as user_cache


def hub_cache(cache_dir: Path | None = None) -> Path:
    """Where hf:// datasets are downloaded to: `<cache>/hf` (the package's one cache folder,
    paths.cache_dir, unless a caller names another)."""
    return Path(cache_dir or user_cache()) / "hf"


def download(repo_id: str, cache_dir: Path | None = None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError("hf:// datasets need huggingface_hub: pip install 'nova-mlflow[hf]'",
                         file=f"hf://{repo_id}") from None
    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset",
                                      cache_dir=str(hub_cache(cache_dir))))
    except Exception as exc:  # network errors, missing repo, offline mode
        raise InputError(f"could not download the dataset ({type(exc).__name__}); without a "
                         "network, download it elsewhere and pass --data DIR",
                         file=f"hf://{repo_id}") from None

"""nova_mlflow: benchmark vision-language models on NOVA (brain MRI), tracked with MLflow.

The Python API (api.py) is reachable from here without importing anything heavy up front:

    import nova_mlflow
    summary = nova_mlflow.run(model="baseline", limit=12)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

API = ("run", "evaluate", "sweep", "compare", "gate", "sync", "validate")


def __getattr__(name: str) -> Any:
    if name in API:
        from nova_mlflow import api

        return getattr(api, name)
    raise AttributeError(f"module 'nova_mlflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])

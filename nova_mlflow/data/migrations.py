"""Explicit upgrades of stored answer records to the current schema version.

Each step takes a plain dict of version N and returns one of version N + 1; `upgrade` chains
them. Records without `schema_version` are treated as v1 (the interface's minimal
{"filename", "task", "text"} lines). A record from a newer package is refused, not guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nova_mlflow.schemas import SCHEMA_VERSION


class NewerSchema(ValueError):
    pass


def v1_to_v2(record: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """v2 records the box frame and the image sent; a v1 record's frame comes from its run.

    `context["frame"]` is the frame the v1 run declared (its `frame` param), if known.
    """
    out = dict(record)
    out.setdefault("frame", context.get("frame"))
    for key in ("image_sha256", "image_size", "attempts", "cached"):
        out.setdefault(key, None)
    out["schema_version"] = 2
    return out


STEPS: dict[int, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {1: v1_to_v2}


def upgrade(record: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    version = record.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise NewerSchema(f"schema_version {version} was written by a newer nova_mlflow "
                          f"(this one reads up to {SCHEMA_VERSION}); upgrade the package")
    ctx = context or {}
    while version < SCHEMA_VERSION:
        record = STEPS[version](record, ctx)
        version = record["schema_version"]
    return record

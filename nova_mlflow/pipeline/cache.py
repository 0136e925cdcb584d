"""`nova-mlflow cache stats / prune`: what the response cache holds, and dropping old entries.

The cache (<cache>/responses.sqlite: model answers and judge verdicts) only grows; `stats`
shows it per provider, model and endpoint, `prune --older-than DAYS` removes old entries
(and old METEOR/BLEU values from the score memo, <cache>/scores.sqlite).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from nova_mlflow.calls.store import FILE, CallStore
from nova_mlflow.memo import FILE as MEMO_FILE
from nova_mlflow.memo import ScoreMemo
from nova_mlflow.paths import cache_dir

COLUMNS = ("kind", "provider", "model", "endpoint", "entries", "oldest", "newest")


def cache_stats() -> dict[str, Any]:
    """{"path", "bytes", "rows": [...]} of the response cache (empty if there is none yet)."""
    path = cache_dir() / FILE
    if not path.is_file():
        return {"path": str(path), "bytes": 0, "rows": []}
    store = CallStore(path)
    try:
        rows = store.stats()
    finally:
        store.close()
    return {"path": str(path), "bytes": path.stat().st_size, "rows": rows}


def prune_cache(older_than_days: float) -> dict[str, Any]:
    """Remove entries older than `older_than_days` (answers, verdicts and the score memo's
    METEOR/BLEU values); {"path", "removed": {table: n}}."""
    path = cache_dir() / FILE
    removed = {"responses": 0, "verdicts": 0}
    if path.is_file():
        store = CallStore(path)
        try:
            removed = store.prune(older_than_days)
        finally:
            store.close()
    removed["scores"] = 0
    if (cache_dir() / MEMO_FILE).is_file():
        memo = ScoreMemo.open(cache_dir())
        if memo is not None:
            try:
                removed["scores"] = memo.prune(older_than_days)
            finally:
                memo.close()
    return {"path": str(path), "removed": removed}


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def stats_table(stats: dict[str, Any]) -> str:
    """The stats as a plain-text table for the terminal."""
    size = stats["bytes"]
    head = f"{stats['path']} ({size / 1e6:.1f} MB)" if size >= 1e5 else \
        f"{stats['path']} ({size / 1e3:.0f} kB)"
    if not stats["rows"]:
        return f"{head}: empty"
    body = [[str(r[c]) if c not in ("oldest", "newest") else _day(r[c]) for c in COLUMNS]
             for r in stats["rows"]]
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *body)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    total = sum(r["entries"] for r in stats["rows"])
    return "\n".join([head, line(COLUMNS), *(line(b) for b in body), f"{total} entries"])

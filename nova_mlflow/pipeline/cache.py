"""`nova-mlflow cache stats / prune`: what the response cache holds, and dropping old entries.

The cache (<cache>/responses.sqlite: model answers and judge verdicts) only grows; `stats`
shows it per provider, model and endpoint, `prune --older-than DAYS` removes old entries
(and old METEOR/BLEU values from the score memo, <cache>/scores.sqlite).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nova_mlflow.calls.store import FILE, CallStore
from nova_mlflow.memo import FILE as MEMO_FILE
from nova_mlflow.memo import ScoreMemo
from nova_mlflow.paths import cache_dir

log = logging.getLogger("nova_mlflow")

COLUMNS = ("kind", "provider", "model", "endpoint", "entries", "oldest", "newest")


def cache_stats() -> dict[str, Any]:
    """{"path", "bytes", "rows": [...], "scores": {...}} of the response cache (empty if there
    is none yet) and of the score memo ("scores": path, bytes, entries, oldest, newest)."""
    path = cache_dir() / FILE
    rows: list[dict[str, Any]] = []
    if path.is_file():
        store = CallStore(path)
        try:
            rows = store.stats()
        finally:
            store.close()
    return {"path": str(path), "bytes": path.stat().st_size if path.is_file() else 0,
            "rows": rows, "scores": _memo_stats()}


@contextmanager
def _memo() -> Iterator[ScoreMemo | None]:
    """The score memo if there is one it can use (an unusable one is a warning), closed after;
    never creates one."""
    memo = ScoreMemo.open(cache_dir()) if (cache_dir() / MEMO_FILE).is_file() else None
    try:
        yield memo
    finally:
        if memo is not None:
            memo.close()


def _memo_stats() -> dict[str, Any]:
    path = cache_dir() / MEMO_FILE
    out: dict[str, Any] = {"path": str(path), "bytes": 0, "entries": 0, "oldest": None,
                           "newest": None}
    with _memo() as memo:
        if memo is not None:
            try:
                out.update(memo.span(), bytes=_size(path))
            except sqlite3.Error as exc:
                log.warning("score memo %s could not be read (%s)", path, exc)
    return out


def _size(db: Path) -> int:
    """Bytes of a WAL-mode sqlite file with its journal files (what it takes on disk)."""
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal"))
               if p.is_file())


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
    with _memo() as memo:
        removed["scores"] = memo.prune(older_than_days) if memo is not None else 0
    return {"path": str(path), "removed": removed}


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def _file(path: str, size: int) -> str:
    return f"{path} ({size / 1e6:.1f} MB)" if size >= 1e5 else f"{path} ({size / 1e3:.0f} kB)"


def _memo_line(memo: dict[str, Any] | None) -> list[str]:
    if not memo:
        return []
    if not memo["entries"]:
        return [f"{_file(memo['path'], memo['bytes'])}: no METEOR/BLEU values"]
    return [f"{_file(memo['path'], memo['bytes'])}: {memo['entries']} METEOR/BLEU value(s),"
            f" {_day(memo['oldest'])} to {_day(memo['newest'])}"]


def stats_table(stats: dict[str, Any]) -> str:
    """The stats as a plain-text table for the terminal (then the score memo's line)."""
    head = _file(stats["path"], stats["bytes"])
    memo = _memo_line(stats.get("scores"))
    if not stats["rows"]:
        return "\n".join([f"{head}: empty", *memo])
    body = [[str(r[c]) if c not in ("oldest", "newest") else _day(r[c]) for c in COLUMNS]
             for r in stats["rows"]]
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *body)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    total = sum(r["entries"] for r in stats["rows"])
    return "\n".join([head, line(COLUMNS), *(line(b) for b in body), f"{total} entries", *memo])

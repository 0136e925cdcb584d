"""The one sqlite store for what provider calls produced: model responses and judge verdicts.

Why one store: both caches have the same needs (committed the moment a result arrives, so a
run killed at any point resumes without paying twice; read by key; never holding a failed
call) and the same file layout, so they share one connection and one file,
<cache>/responses.sqlite, in two tables. A verdict file from an older version
(judge_verdicts.sqlite) is read into it once.

Response key = sha256 over provider kind, model, endpoint, prompt text hash, generation
settings, image hash and task (`request_key`). The endpoint (the base URL without
credentials) is in the key because two servers can serve one model name (two quantisations
of one model, a proxy and the vendor) and must never share answers. Verdict key: the
judge's own (judge.JudgeMatcher.key), with the judge's endpoint in it for the same reason.

Entries written before endpoints were part of the key (schema 1: no `endpoint` column) are
reused only when the call goes to the provider's default endpoint: a `CacheKey` carries the
old key form (`legacy`) only then, and only rows without a recorded endpoint answer to it.
The schema is migrated in place when the file is opened (columns added; old rows keep NULL).

Each response row may carry the id of the MLflow trace of the call that produced it
(`trace_id`, nullable, schema 3): a cached re-run links that trace to its run instead of
logging a trace per cached answer (tracking/linking.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nova_mlflow.errors import InputError
from nova_mlflow.metrics.matching import Verdict
from nova_mlflow.providers.base import Request, Response

SCHEMA_VERSION = 3  # 1: no endpoint in keys or rows; 2: endpoint (and the judge's model);
# 3: the trace id of the call that produced a response
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    refused INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    match INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
"""
ADDED_COLUMNS = {"responses": ("endpoint", "trace_id"),  # schema 2, 3
                 "verdicts": ("model", "endpoint")}  # schema 2
FILE = "responses.sqlite"
OLD_VERDICTS = "judge_verdicts.sqlite"
UNRECORDED = "(not recorded)"  # how stats show what rows from before schema 2 lack
DAY_S = 86400.0


@dataclass(frozen=True)
class CacheKey:
    """Where a result is stored: the key, what it is for, and the pre-endpoint key form
    (`legacy`, set only for the provider's default endpoint)."""

    key: str
    provider: str
    model: str
    endpoint: str | None
    legacy: str | None = None


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _request_payload(provider: str, model: str, request: Request) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "prompt_sha256": hashlib.sha256(request.prompt.encode()).hexdigest(),
        "settings": request.settings.model_dump(mode="json"),
        "image_sha256": request.image_sha256,
        "task": request.task.value,
    }


def request_key(provider: str, model: str, request: Request, endpoint: str | None) -> str:
    return _sha({**_request_payload(provider, model, request), "endpoint": endpoint})


def legacy_request_key(provider: str, model: str, request: Request) -> str:
    """The key schema 1 wrote (no endpoint in it)."""
    return _sha(_request_payload(provider, model, request))


def response_key(provider: Any, request: Request) -> CacheKey:
    """The CacheKey of a call to `provider` (name, model, endpoint, default_endpoint)."""
    name, model = provider.name, provider.model
    endpoint = getattr(provider, "endpoint", None)
    at_default = endpoint == getattr(provider, "default_endpoint", None)
    return CacheKey(request_key(name, model, request, endpoint), name, model, endpoint,
                    legacy_request_key(name, model, request) if at_default else None)


class CallStore:
    """Thread-safe (one lock) sqlite store; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise InputError(f"not a response cache ({exc}); move it away or point "
                             "NOVA_MLFLOW_CACHE elsewhere", file=path) from None
        self._import_old_verdicts(path.parent / OLD_VERDICTS)

    @classmethod
    def in_dir(cls, cache_dir: Path) -> CallStore:
        return cls(cache_dir / FILE)

    def _migrate(self) -> None:
        """Schema 1 -> 2 in place: add the new columns (old rows keep NULL in them)."""
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column in have:
                    continue
                try:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _import_old_verdicts(self, old: Path) -> None:
        if not old.is_file():
            return
        with self._lock:
            self._db.execute("ATTACH DATABASE ? AS old", (str(old),))
            try:
                self._db.execute("INSERT OR IGNORE INTO verdicts (key, match, reason, created) "
                                 "SELECT key, match, reason, created FROM old.verdicts")
            except sqlite3.DatabaseError:
                pass  # not a verdict file after all: leave it alone
            finally:
                self._db.execute("DETACH DATABASE old")
        old.rename(old.with_suffix(".sqlite.imported"))

    def _one(self, sql: str, key: str, legacy: str | None) -> tuple | None:
        """The row of `key`, else (schema-1 rows only) the row of its legacy form."""
        with self._lock:
            row = self._db.execute(f"{sql} WHERE key = ?", (key,)).fetchone()
            if row is None and legacy:
                row = self._db.execute(f"{sql} WHERE key = ? AND endpoint IS NULL",
                                       (legacy,)).fetchone()
        return row

    # --- model responses ------------------------------------------------------------------
    def get(self, key: CacheKey) -> Response | None:
        """The stored response (cached=True), with the trace id of its call if one was kept."""
        row = self._one("SELECT text, refused, input_tokens, output_tokens, trace_id "
                        "FROM responses", key.key, key.legacy)
        if row is None:
            return None
        return Response(text=row[0], refused=bool(row[1]), input_tokens=row[2],
                        output_tokens=row[3], cached=True, trace_id=row[4])

    def put(self, key: CacheKey, response: Response, trace_id: str | None = None) -> None:
        """Store a fresh response; `trace_id`: the MLflow trace of the call (None: untraced)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, provider, model, endpoint, text, refused, "
                "input_tokens, output_tokens, created, trace_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.key, key.provider, key.model, key.endpoint, response.text,
                 int(response.refused), response.input_tokens, response.output_tokens,
                 time.time(), trace_id))

    def set_trace_id(self, key: CacheKey, trace_id: str) -> None:
        """Record the trace a stored response now has (a cached answer traced anew); the row
        found by `get`: its key, else its legacy form."""
        with self._lock:
            cur = self._db.execute("UPDATE responses SET trace_id = ? WHERE key = ?",
                                   (trace_id, key.key))
            if cur.rowcount == 0 and key.legacy:
                self._db.execute("UPDATE responses SET trace_id = ? WHERE key = ? AND "
                                 "endpoint IS NULL", (trace_id, key.legacy))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # --- judge verdicts -------------------------------------------------------------------
    def get_verdict(self, key: str, legacy: str | None = None) -> Verdict | None:
        row = self._one("SELECT match, reason FROM verdicts", key, legacy)
        return Verdict(bool(row[0]), row[1]) if row else None

    def put_verdict(self, key: str, verdict: Verdict, model: str | None = None,
                    endpoint: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts (key, match, reason, created, model, endpoint) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, int(verdict.match), verdict.reason, time.time(), model, endpoint))

    # --- housekeeping (`nova-mlflow cache stats / prune`) ---------------------------------
    def stats(self) -> list[dict[str, Any]]:
        """Entries per kind (responses / verdicts), provider, model and endpoint."""
        queries = {
            "responses": "SELECT provider, model, endpoint, COUNT(*), MIN(created), MAX(created) "
                         "FROM responses GROUP BY provider, model, endpoint",
            "verdicts": "SELECT 'judge', model, endpoint, COUNT(*), MIN(created), MAX(created) "
                        "FROM verdicts GROUP BY model, endpoint",
        }
        out = []
        with self._lock:
            for kind, sql in queries.items():
                for provider, model, endpoint, n, oldest, newest in self._db.execute(sql):
                    out.append({"kind": kind, "provider": provider, "model": model or UNRECORDED,
                                "endpoint": endpoint or UNRECORDED, "entries": int(n),
                                "oldest": float(oldest), "newest": float(newest)})
        return sorted(out, key=lambda r: (r["kind"], r["provider"], r["model"], r["endpoint"]))

    def prune(self, older_than_days: float, now: float | None = None) -> dict[str, int]:
        """Delete entries created more than `older_than_days` ago; how many, per table."""
        cutoff = (time.time() if now is None else now) - older_than_days * DAY_S
        removed = {}
        with self._lock:
            for table in ("responses", "verdicts"):
                cur = self._db.execute(f"DELETE FROM {table} WHERE created < ?", (cutoff,))
                removed[table] = int(cur.rowcount)
            if any(removed.values()):
                self._db.execute("VACUUM")  # give the space back
        return removed

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""The one sqlite store for what provider calls produced: model responses and judge verdicts.

Why one store: both caches have the same needs (committed the moment a result arrives, so a
run killed at any point resumes without paying twice; read by key; never holding a failed
call) and the same file layout, so they share one connection and one file,
<cache>/responses.sqlite, in two tables. A verdict file from an older version
(judge_verdicts.sqlite) is read into it once.

Response key = sha256 over provider kind, model, prompt text hash, generation settings,
image hash and task (`request_key`). Verdict key: the judge's own (judge.JudgeMatcher.key).

Each response row may carry the id of the MLflow trace of the call that produced it
(`trace_id`, nullable; added in place to older files): a cached re-run links that trace to
its run instead of logging a trace per cached answer (tracking/linking.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from nova_mlflow.providers.base import Request, Response
from nova_mlflow.metrics.matching import Verdict

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
FILE = "responses.sqlite"
OLD_VERDICTS = "judge_verdicts.sqlite"


def request_key(provider: str, model: str, request: Request) -> str:
    payload = {
        "provider": provider,
        "model": model,
        "prompt_sha256": hashlib.sha256(request.prompt.encode()).hexdigest(),
        "settings": request.settings.model_dump(mode="json"),
        "image_sha256": request.image_sha256,
        "task": request.task.value,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CallStore:
    """Thread-safe (one lock) sqlite store; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._add_trace_id_column()
        self._import_old_verdicts(path.parent / OLD_VERDICTS)

    @classmethod
    def in_dir(cls, cache_dir: Path) -> CallStore:
        return cls(cache_dir / FILE)

    def _add_trace_id_column(self) -> None:
        """In-place migration of a file written before responses kept their trace id."""
        with self._lock:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(responses)")}
            if "trace_id" in cols:
                return
            try:
                self._db.execute("ALTER TABLE responses ADD COLUMN trace_id TEXT")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise

    def _import_old_verdicts(self, old: Path) -> None:
        if not old.is_file():
            return
        with self._lock:
            self._db.execute("ATTACH DATABASE ? AS old", (str(old),))
            try:
                self._db.execute("INSERT OR IGNORE INTO verdicts SELECT key, match, reason, "
                                 "created FROM old.verdicts")
            except sqlite3.DatabaseError:
                pass  # not a verdict file after all: leave it alone
            finally:
                self._db.execute("DETACH DATABASE old")
        old.rename(old.with_suffix(".sqlite.imported"))

    # --- model responses ------------------------------------------------------------------
    def get(self, key: str) -> Response | None:
        """The stored response (cached=True), with the trace id of its call if one was kept."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, refused, input_tokens, output_tokens, trace_id FROM responses "
                "WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Response(text=row[0], refused=bool(row[1]), input_tokens=row[2],
                        output_tokens=row[3], cached=True, trace_id=row[4])

    def put(self, key: str, provider: str, model: str, response: Response,
            trace_id: str | None = None) -> None:
        """Store a fresh response; `trace_id`: the MLflow trace of the call (None: untraced)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, provider, model, text, refused, "
                "input_tokens, output_tokens, created, trace_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, provider, model, response.text, int(response.refused),
                 response.input_tokens, response.output_tokens, time.time(), trace_id))

    def set_trace_id(self, key: str, trace_id: str) -> None:
        """Record the trace a stored response now has (a cached answer traced anew)."""
        with self._lock:
            self._db.execute("UPDATE responses SET trace_id = ? WHERE key = ?", (trace_id, key))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # --- judge verdicts -------------------------------------------------------------------
    def get_verdict(self, key: str) -> Verdict | None:
        with self._lock:
            row = self._db.execute("SELECT match, reason FROM verdicts WHERE key = ?",
                                   (key,)).fetchone()
        return Verdict(bool(row[0]), row[1]) if row else None

    def put_verdict(self, key: str, verdict: Verdict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                             (key, int(verdict.match), verdict.reason, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()

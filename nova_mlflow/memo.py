"""Metric values kept across processes: a value computed once for the same inputs is read back.

Why: a cached re-run (or a second `evaluate` of the same answers) scores the same caption
pairs again, and METEOR is the slow part of scoring: nltk's import (~1 s), the WordNet load
(~0.15 s) and ~0.3 ms a pair. METEOR of a (reference, answer) pair is a pure function of the
two word lists, the package's metric definitions (METRICS_VERSION), the nltk version (its
morphy rules have changed between releases) and the WordNet data; the key holds all of them,
so a new release's metrics, a new nltk or another WordNet misses and is computed afresh.

Where: <cache>/scores.sqlite, beside the response cache and dropped with it (`cache prune`).
A memo that cannot be opened or written is a warning, never a failure: the values are then
computed, as without a memo.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("nova_mlflow")

FILE = "scores.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS memo (
    key TEXT PRIMARY KEY,
    value REAL NOT NULL,
    created REAL NOT NULL
);
"""
_BATCH = 500  # keys per SELECT (sqlite's host-parameter limit is 999 on old builds)


def memo_key(scorer: str, *parts: Any) -> str:
    """The key of one value: the scorer's identity (name, versions, data) and its inputs."""
    blob = json.dumps([scorer, *parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ScoreMemo:
    """Thread-safe sqlite key -> float store; `get`/`put` take many keys at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            self._db.close()
            raise

    @classmethod
    def open(cls, cache_dir: Path) -> ScoreMemo | None:
        """The memo in `cache_dir`, or None (with a warning) when it cannot be used."""
        try:
            return cls(cache_dir / FILE)
        except (OSError, sqlite3.Error) as exc:
            log.warning("score memo %s not usable (%s): metrics are computed without it",
                        cache_dir / FILE, exc)
            return None

    def get(self, keys: Iterable[str]) -> dict[str, float]:
        """The values known for `keys` (missing keys are absent); {} if the read fails."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, float] = {}
        try:
            with self._lock:
                for i in range(0, len(wanted), _BATCH):
                    chunk = wanted[i:i + _BATCH]
                    marks = ",".join("?" * len(chunk))
                    out.update(self._db.execute(
                        f"SELECT key, value FROM memo WHERE key IN ({marks})", chunk))
        except sqlite3.Error as exc:
            log.warning("score memo %s could not be read (%s): computing instead", self.path, exc)
            return {}
        return out

    def put(self, values: Mapping[str, float]) -> None:
        """Store `values` in one transaction; a failure is a warning (they were computed)."""
        if not values:
            return
        now = time.time()
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?)",
                                     [(k, float(v), now) for k, v in values.items()])
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.warning("score memo %s could not be written (%s)", self.path, exc)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def through(self, keys: Sequence[str], compute: Callable[[list[int]], list[float]],
                what: str = "values") -> list[float]:
        """The value of every key: read back where known, else `compute(indices of the
        missing keys)` (in that order) and stored. Returns them in `keys`' order; logs how
        many of `what` were read back."""
        known = self.get(keys)
        todo = [i for i, k in enumerate(keys) if k not in known]
        if todo:
            fresh = dict(zip((keys[i] for i in todo), compute(todo)))
            self.put(fresh)
            known.update(fresh)
        log.info("%s: %d of %d from the score memo", what, len(keys) - len(todo), len(keys))
        return [known[k] for k in keys]

    def prune(self, older_than_days: float) -> int:
        """Remove values stored more than `older_than_days` ago; how many went."""
        cutoff = time.time() - older_than_days * 86400
        with self._lock:
            return self._db.execute("DELETE FROM memo WHERE created < ?", (cutoff,)).rowcount

    def span(self) -> dict[str, Any]:
        """{"entries", "oldest", "newest"} (timestamps; None when empty): what `cache stats`
        shows of the memo."""
        with self._lock:
            n, oldest, newest = self._db.execute(
                "SELECT count(*), min(created), max(created) FROM memo").fetchone()
        return {"entries": int(n), "oldest": oldest, "newest": newest}

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM memo").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

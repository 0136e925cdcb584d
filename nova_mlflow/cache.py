"""Response cache: sqlite, keyed by everything that changes an answer.

Key = sha256 over provider kind, model, prompt text hash, generation settings, image hash and
the input text (the rendered prompt). Only real answers (answered or refused) are stored,
committed one by one as they arrive, so a run killed at any moment resumes without paying
for any request twice. Failed calls are never stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from nova_mlflow.providers.base import Request, Response

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
)
"""


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


class ResponseCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def get(self, key: str) -> Response | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, refused, input_tokens, output_tokens FROM responses WHERE key = ?",
                (key,)).fetchone()
        if row is None:
            return None
        return Response(text=row[0], refused=bool(row[1]), input_tokens=row[2],
                        output_tokens=row[3], cached=True)

    def put(self, key: str, provider: str, model: str, response: Response) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, provider, model, response.text, int(response.refused),
                 response.input_tokens, response.output_tokens, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

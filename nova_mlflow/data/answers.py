"""Answer files: JSONL, one Answer per line (the `evaluate` format of interface.md).

Writing appends and flushes each line as it arrives, so a killed run keeps every answer it
got. Reading is strict and names the line and field of the first problem (exit code 2);
it never uses pickle or eval.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from nova_mlflow.errors import InputError
from nova_mlflow.data.migrations import upgrade
from nova_mlflow.schemas import Answer, Task

AnswerKey = tuple[str, Task]


class AnswerLog:
    """Append-only JSONL writer; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> AnswerLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, answer: Answer) -> None:
        assert self._fh is not None, "AnswerLog used outside its context"
        self._fh.write(answer.model_dump_json(exclude_none=True) + "\n")
        self._fh.flush()

    def __exit__(self, *exc: object) -> None:
        if self._fh:
            self._fh.close()


def write_answers(path: Path, answers: Iterable[Answer]) -> None:
    with AnswerLog(path) as log:
        for a in answers:
            log.write(a)


def read_answers(path: Path, known_filenames: set[str] | None = None,
                 context: dict | None = None) -> dict[AnswerKey, Answer]:
    """Strict reader: bad JSON, missing fields, unknown tasks or filenames, duplicates -> exit 2.

    Older records are upgraded by migrations.upgrade (`context` carries what a v1 run
    declared, e.g. its frame).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read outputs file ({exc.strerror})", file=path) from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text at line {line}", file=path) from None
    out: dict[AnswerKey, Answer] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {n} is not JSON ({exc.msg})", file=path, row=n) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", file=path, row=n)
        try:
            obj = upgrade(obj, context)
        except ValueError as exc:
            raise InputError(str(exc), file=path, row=n, field="schema_version") from None
        try:
            answer = Answer.model_validate(obj)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise InputError(err["msg"], file=path, row=n, field=field) from None
        if known_filenames is not None and answer.filename not in known_filenames:
            raise InputError(f"filename {answer.filename!r} is not in the dataset", file=path,
                             row=n, field="filename")
        key = (answer.filename, answer.task)
        if key in out:
            raise InputError(f"second answer for {answer.filename} / {answer.task.value}",
                             file=path, row=n, field="filename")
        out[key] = answer
    if not out:
        raise InputError("the outputs file holds no answers", file=path)
    return out


def latest_answers(path: Path) -> dict[AnswerKey, Answer]:
    """Lenient reader for our own append log: the last good line per key wins."""
    out: dict[AnswerKey, Answer] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            a = Answer.model_validate(upgrade(json.loads(line)))
        except (ValueError, ValidationError):
            continue  # a line cut by a kill
        out[(a.filename, a.task)] = a
    return out

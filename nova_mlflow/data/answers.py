"""Answer files: JSONL, one Answer per line (the `evaluate` format of interface.md).

Writing appends and flushes each line as it arrives, so a killed run keeps every answer it
got. Reading (`read_answers`, for `evaluate --outputs` and `replay:`) is strict, because a
file written elsewhere that is read loosely is scored wrongly without a word: every line
needs `filename`, `task` and `text`, a string or null (null = "no answer", scored as
missing; "" is an answer, e.g. "no lesion"). A misspelled or missing key, a filename not in
the dataset, or two different answers to one (filename, task) stop with exit code 2 and one
line naming the file, the line and the fields found. Extra fields are kept. Lines recorded
by nova-mlflow itself for a failed call (status "api_error") may lack `text`. Never pickle
or eval.
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
REQUIRED = ("filename", "task", "text")
NEEDS = 'every line needs "filename", "task" and "text" (a string, or null for no answer)'


def answer_line(answer: Answer) -> str:
    """One JSONL line: unset fields left out, except `text`, which is always there (null for
    a failed call or no answer) so the line reads back under the outputs-file rules."""
    if answer.text is not None:
        return answer.model_dump_json(exclude_none=True)
    record = answer.model_dump(mode="json", exclude_none=True)
    ordered = {}
    for k, v in record.items():
        ordered[k] = v
        if k == "task":
            ordered["text"] = None
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))


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
        self._fh.write(answer_line(answer) + "\n")
        self._fh.flush()

    def __exit__(self, *exc: object) -> None:
        if self._fh:
            self._fh.close()


def write_answers(path: Path, answers: Iterable[Answer]) -> None:
    with AnswerLog(path) as log:
        for a in answers:
            log.write(a)


def _found(obj: dict) -> str:
    return "fields found: " + (", ".join(sorted(str(k) for k in obj)) or "none")


def _json_type(value: object) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def check_fields(obj: dict, path: Path, n: int) -> None:
    """The outputs-file rules for one parsed line (module docstring)."""
    for name in REQUIRED:
        if name not in obj and not (name == "text" and obj.get("status") == "api_error"):
            raise InputError(f"missing; {NEEDS}; {_found(obj)}", file=path, line=n, field=name)
    for name in ("filename", "task"):
        if not isinstance(obj[name], str) or not obj[name].strip():
            raise InputError(f"must be a non-empty string, not {_json_type(obj[name])}; "
                             f"{_found(obj)}", file=path, line=n, field=name)
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise InputError(f"must be a string, or null for no answer, not {_json_type(text)}; "
                         f"{_found(obj)}", file=path, line=n, field="text")


def parse_line(line: str, path: Path, n: int, context: dict | None) -> Answer:
    """One line of an outputs file as an Answer (upgraded to the current schema)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg}); {NEEDS}", file=path, line=n) from None
    except RecursionError:
        raise InputError(f"not JSON (nested too deeply); {NEEDS}", file=path, line=n) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, not {_json_type(obj)}; {NEEDS}", file=path,
                         line=n)
    check_fields(obj, path, n)
    try:
        record = upgrade(obj, context)
    except ValueError as exc:
        raise InputError(str(exc), file=path, line=n, field="schema_version") from None
    try:
        return Answer.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InputError(f"{err['msg']}; {_found(obj)}", file=path, line=n, field=field) from None


def read_answers(path: Path, known_filenames: set[str] | None = None,
                 context: dict | None = None) -> dict[AnswerKey, Answer]:
    """Strict reader (module docstring): any bad line stops with exit code 2, naming it.

    Older records are upgraded by migrations.upgrade (`context` carries what a v1 run
    declared, e.g. its frame). The same answer given twice is read once.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read outputs file ({exc.strerror})", file=path) from None
    try:
        lines = raw.decode("utf-8-sig").splitlines()  # a BOM some editors add is dropped
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", file=path, line=line) from None
    out: dict[AnswerKey, Answer] = {}
    first_line: dict[AnswerKey, int] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        answer = parse_line(line, path, n, context)
        if known_filenames is not None and answer.filename not in known_filenames:
            raise InputError(f"filename {answer.filename!r} is not in the dataset", file=path,
                             line=n, field="filename")
        key = (answer.filename, answer.task)
        if key in out:
            if (out[key].text, out[key].status) == (answer.text, answer.status):
                continue  # the same answer twice
            raise InputError(f"a second, different answer for {answer.filename} / "
                             f"{answer.task.value} (the first is on line {first_line[key]})",
                             file=path, line=n, field="text")
        out[key] = answer
        first_line[key] = n
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

"""Errors that map to the CLI's exit codes (see docs in README, interface.md).

Every error a user can cause carries where it happened (file, row, field) so the CLI can
print it as one line; nothing here knows about click or MLflow.
"""

from __future__ import annotations

from pathlib import Path


class NovaError(Exception):
    """Base class; `exit_code` is what the CLI returns."""

    exit_code = 1


class InputError(NovaError):
    """Bad input: unreadable data, malformed row, bad flag, bad outputs file. Exit 2.

    `row` is a data row (CSV, parquet); `line` a line of a text file (JSONL outputs files),
    counted from 1 with blank lines included, as an editor shows it.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = " ".join(str(message).split())  # always one line
        self.file = str(file) if file is not None else None
        self.row = row
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class ProviderError(NovaError):
    """A model provider left cases unanswered after retries. Exit 3."""

    exit_code = 3

"""Turning one published row (either layout) into a validated Case.

Both readers hand over plain dicts of field -> value plus where the row came from, so the
checks and error messages are the same for the CSV and the parquet release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import ValidationError

from nova_mlflow.data.boxes import BoxFormatError, literal_dict, parse_box_dict
from nova_mlflow.data.derived import derive
from nova_mlflow.errors import InputError
from nova_mlflow.schemas import IMAGE_SIZE, Box, Case, RaterBox


@dataclass(frozen=True)
class RowSource:
    file: Path
    row: int  # 1-based data row (the header is not counted)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip()
    )


def text(value: Any) -> str | None:
    return None if is_missing(value) else str(value).strip()


def check_filename(name: Any, src: RowSource) -> str:
    """A filename from data must never point outside the images directory."""
    s = text(name)
    if s is None:
        raise InputError("filename is empty", file=src.file, row=src.row, field="filename")
    if (
        PurePosixPath(s).name != s
        or PureWindowsPath(s).name != s
        or s in {".", ".."}
        or "\x00" in s
    ):
        raise InputError(
            f"filename {s!r} has a path component; expected a plain name like case0001_001.png",
            file=src.file, row=src.row, field="filename",
        )
    return s


def split_differential(value: Any) -> list[str]:
    if is_missing(value):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in str(value).split(";") if p.strip()]


def gold_from_literal(value: Any, src: RowSource, field: str, size: tuple[int, int]) -> list[Box]:
    """The gold boxes as written (not clipped: make_case keeps both readings)."""
    try:
        return parse_box_dict(literal_dict(value), width=size[0], height=size[1], clip=False)
    except (BoxFormatError, ValidationError, ValueError) as exc:
        raise InputError(f"malformed box string: {_short(exc)}", file=src.file, row=src.row,
                         field=field) from None


def raters_from_literal(value: Any, src: RowSource, field: str, size: tuple[int, int]) -> list[RaterBox]:
    try:
        return parse_box_dict(literal_dict(value), width=size[0], height=size[1], with_rater=True)
    except (BoxFormatError, ValidationError, ValueError) as exc:
        raise InputError(f"malformed box string: {_short(exc)}", file=src.file, row=src.row,
                         field=field) from None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(e["msg"] for e in exc.errors())
    return str(exc)


def scan_id_of(value: Any, src: RowSource) -> int:
    try:
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise ValueError
        return int(f)
    except (TypeError, ValueError):
        raise InputError(f"scan_id is not an integer: {value!r}", file=src.file, row=src.row,
                         field="scan_id") from None


@dataclass
class RowFields:
    """One metadata row's values, as read from either layout, before validation."""

    filename: str
    image_path: Path
    case_id: Any
    scan_id: Any
    caption: Any
    clinical_history: Any
    differential: Any
    final_diagnosis: Any
    title: Any = None
    gold: list[Box] = field(default_factory=list)  # as written (not clipped)
    raters: list[RaterBox] = field(default_factory=list)
    size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)


def make_case(src: RowSource, row: RowFields) -> Case:
    """A validated Case; gold boxes are clipped to the image, their written form kept too."""
    cid = text(row.case_id)
    if cid is None:
        raise InputError("case_id is empty", file=src.file, row=src.row, field="case_id")
    final = text(row.final_diagnosis)
    if final is None:
        raise InputError("final_diagnosis is empty", file=src.file, row=src.row,
                         field="final_diagnosis")
    cap, hist = text(row.caption), text(row.clinical_history)
    width, height = row.size
    return Case(
        filename=row.filename,
        case_id=cid,
        scan_id=scan_id_of(row.scan_id, src),
        image_path=row.image_path,
        image_width=width,
        image_height=height,
        caption=cap,
        clinical_history=hist or "",
        differential_diagnosis=split_differential(row.differential),
        final_diagnosis=final,
        title=text(row.title),
        gold_boxes=[b.clip(width, height) for b in row.gold],
        gold_boxes_as_written=list(row.gold),
        rater_boxes=row.raters,
        derived=derive(cap, hist),
    )

"""The one place where NOVA's x/y/width/height box dicts become pixel xyxy Boxes.

The metadata CSV stores `bbox_gold` / `bbox_raters` as Python-literal dict strings of
parallel lists, e.g. "{'x': [169.5], 'y': [248.1], 'width': [221.2], 'height': [205.8]}".
They are parsed with ast.literal_eval (never eval, never json) and validated here.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nova_mlflow.schemas import Box, RaterBox

_COORDS = ("x", "y", "width", "height")


class BoxFormatError(ValueError):
    """Raised with a message that fits in one line; the reader adds file/row/field."""


def literal_dict(text: Any) -> Mapping[str, Any] | None:
    """Parse a Python-literal dict string; None/NaN/empty means "no boxes"."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if isinstance(text, Mapping):
        return text
    s = str(text).strip()
    if not s:
        return None
    if re.search(r"\b(nan|inf|infinity)\b", s, re.I):
        raise BoxFormatError(f"contains NaN or infinite values: {s[:60]!r}")
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise BoxFormatError(f"not a Python-literal dict ({type(exc).__name__}): {s[:60]!r}") from None
    if not isinstance(value, dict):
        raise BoxFormatError(f"expected a dict of lists, got {type(value).__name__}")
    return value


def _as_number(value: Any, key: str, i: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoxFormatError(f"{key}[{i}] is not a number: {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise BoxFormatError(f"{key}[{i}] is {f}")
    return f


def xywh_to_box(xywh: Sequence[float], width: int, height: int, clip: bool = True) -> Box:
    """(x, y, w, h): top-left corner plus size -> xyxy, clipped to the image unless `clip` is
    False (5 NOVA gold boxes overhang; the authors' hit rate reads them as written)."""
    x, y, w, h = xywh
    box = Box(x1=x, y1=y, x2=x + w, y2=y + h)
    return box.clip(width, height) if clip else box


def parse_box_dict(
    value: Mapping[str, Any] | None,
    *,
    width: int,
    height: int,
    with_rater: bool = False,
    clip: bool = True,
) -> list[Box] | list[RaterBox]:
    """Validate the parallel lists and return boxes in their stored order (clipped unless
    `clip` is False)."""
    if value is None:
        return []
    keys = ("rater", *_COORDS) if with_rater else _COORDS
    missing = [k for k in keys if k not in value]
    if missing:
        raise BoxFormatError(f"missing key(s) {missing}")
    lists: dict[str, Sequence[Any]] = {}
    for k in keys:
        v = value[k]
        if not isinstance(v, (list, tuple)):
            v = [v]  # tolerate a scalar for a single box
        lists[k] = v
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) != 1:
        raise BoxFormatError(f"lists of different lengths {lengths}")
    boxes: list = []
    for i in range(lengths[keys[0]]):
        x, y, w, h = (_as_number(lists[k][i], k, i) for k in _COORDS)
        if w < 0 or h < 0:
            raise BoxFormatError(f"negative size width={w} height={h} in box {i}")
        box = xywh_to_box((x, y, w, h), width, height, clip)
        if with_rater:
            boxes.append(RaterBox(rater=str(lists["rater"][i]), **box.model_dump()))
        else:
            boxes.append(box)
    return boxes


def boxes_from_records(records: Any, *, width: int, height: int, source: str = "gold",
                       clip: bool = True) -> list[Box]:
    """Parquet release: a list of {x, y, width, height, source} dicts; keep one source."""
    if records is None:
        return []
    out: list[Box] = []
    for i, rec in enumerate(list(records)):
        if not isinstance(rec, Mapping):
            raise BoxFormatError(f"box {i} is not a mapping: {rec!r}")
        if rec.get("source", source) != source:
            continue
        x, y, w, h = (_as_number(rec.get(k), k, i) for k in _COORDS)
        if w < 0 or h < 0:
            raise BoxFormatError(f"negative size width={w} height={h} in box {i}")
        out.append(xywh_to_box((x, y, w, h), width, height, clip))
    return out

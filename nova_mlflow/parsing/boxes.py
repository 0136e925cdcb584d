"""Localization answers -> boxes in pixels of the original image.

Answers come in many shapes (fenced JSON, bare lists, Gemini `box_2d`, Qwen's
`<|box_start|>` tokens, truncated JSON, prose); numbers are read in the model's declared
frame and converted to pixels by frames.to_pixels, the one conversion point.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from nova_mlflow.parsing.frames import to_pixels, to_pixels_as_written
from nova_mlflow.parsing.text import json_candidates, loads_all
from nova_mlflow.schemas import Box, Frame, LocalizationPrediction, Parsed

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|NaN|inf|Infinity"
_QUAD = re.compile(
    rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]"
)
_QWEN_TOKENS = re.compile(
    rf"<\|box_start\|>\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
)  # <|box_end|> not required: a truncated answer can lose it after complete numbers
_NO_TARGET = re.compile(
    r"\b(no target|no (?:visible |obvious |focal |detectable )?(?:abnormalit(?:y|ies)|lesions?|anomal(?:y|ies)|findings?)"
    r"|none found|nothing (?:abnormal|found)|not applicable|normal (?:study|scan|brain))\b|^\s*(none|n/a|\[\s*\])\s*\.?\s*$",
    re.I,
)
_BOX_KEYS = ("bbox_2d", "box_2d", "bbox", "box", "bounding_box", "coordinates", "coords")


def parse_boxes(text: str | None, *, frame: Frame, sent: tuple[int, int],
                original: tuple[int, int]) -> Parsed:
    if text is None or not text.strip():
        return Parsed(prediction=LocalizationPrediction(boxes=[]))
    quads = _quads_from_json(text)
    if quads == []:  # well-formed JSON that holds no box: a valid "no target"
        return Parsed(prediction=LocalizationPrediction(boxes=[]))
    if quads is None:
        quads = [list(m) for m in _QWEN_TOKENS.findall(text)] or [list(m) for m in _QUAD.findall(text)]
    if not quads:
        if _NO_TARGET.search(text):
            return Parsed(prediction=LocalizationPrediction(boxes=[]))
        return Parsed(error="no box found in the answer")
    boxes: list[Box] = []
    as_written: list[tuple[float, float, float, float]] = []
    for quad in quads:
        try:
            values = [float(v) for v in quad]
        except (TypeError, ValueError):
            return Parsed(error=f"box values are not numbers: {quad!r}"[:200])
        if not all(math.isfinite(v) for v in values):
            return Parsed(error=f"box has non-finite values: {quad!r}"[:200])
        boxes.append(to_pixels(values, frame, sent, original))
        as_written.append(to_pixels_as_written(values, frame, sent, original))
    return Parsed(prediction=LocalizationPrediction(boxes=boxes, as_written=as_written))


def _quads_from_json(text: str) -> list[list[Any]] | None:
    """Boxes found in a JSON answer, or None when no candidate parses as JSON."""
    for cand in json_candidates(text):
        try:
            values = loads_all(cand)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        quads: list[list[Any]] = []
        for value in values:
            _walk(value, quads)
        if quads:
            return quads
        if not _has_number(values) and _says_no_box(values):  # {"findings": []}: valid "no boxes"
            return quads
    return None


def _says_no_box(v: Any, depth: int = 0) -> bool:
    """JSON without numbers reads as "no boxes" only if it asserts nothing else.

    An explicitly empty list ({"findings": []}) or only nulls / false / empty strings does;
    a label or sentence without coordinates ({"label": "lesion"}) does not: that answer
    falls through to the "no target" phrases and otherwise counts as a parse failure.
    """
    if depth > 8:
        return False
    if isinstance(v, list):
        return not v or any(isinstance(x, list) and not x for x in v) or all(
            _says_no_box(x, depth + 1) for x in v)
    if isinstance(v, dict):
        vals = list(v.values())
        return any(isinstance(x, list) and not x for x in vals) or all(
            _says_no_box(x, depth + 1) for x in vals)
    return v is None or v is False or (isinstance(v, str) and not v.strip())


def _has_number(v: Any, depth: int = 0) -> bool:
    if depth > 8:
        return True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return True
    if isinstance(v, list):
        return any(_has_number(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return any(_has_number(x, depth + 1) for x in v.values())
    return False


def _is_quad(v: Any) -> bool:
    """Four numbers; numeric strings count ("bbox_2d": ["100", "200", ...])."""
    return isinstance(v, list) and len(v) == 4 and all(
        (isinstance(x, (int, float)) and not isinstance(x, bool))
        or (isinstance(x, str) and re.fullmatch(_NUM, x.strip()) is not None) for x in v
    )


def _walk(value: Any, out: list[list[Any]], depth: int = 0) -> None:
    if depth > 6:
        return
    if _is_quad(value):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _walk(v, out, depth + 1)
    elif isinstance(value, dict):
        for key in _BOX_KEYS:
            if key in value:
                _walk(value[key], out, depth + 1)
                return
        for keys in (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax")):
            if all(k in value for k in keys):
                quad = [value[k] for k in keys]
                if _is_quad(quad):
                    out.append(quad)
                return
        for v in value.values():
            if isinstance(v, (list, dict)):
                _walk(v, out, depth + 1)

"""Raw model text -> task prediction. Never raises: a bad answer is a counted parse failure.

Localization answers come in many shapes (fenced JSON, bare lists, Gemini `box_2d`, Qwen's
`<|box_start|>` tokens, truncated JSON, prose); numbers are read in the model's declared
frame and converted to pixels by frames.to_pixels, the one conversion point.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from nova_mlflow.frames import Frame, to_pixels
from nova_mlflow.schemas import (
    Box,
    CaptionPrediction,
    DiagnosisPrediction,
    LocalizationPrediction,
    Parsed,
    Task,
)

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|NaN|inf|Infinity"
_QUAD = re.compile(
    rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]"
)
_QWEN_TOKENS = re.compile(
    rf"<\|box_start\|>\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*<\|box_end\|>"
)
_FENCE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)(?:```|$)", re.S)
_NO_TARGET = re.compile(
    r"\b(no target|no (?:visible |obvious |focal |detectable )?(?:abnormalit(?:y|ies)|lesions?|anomal(?:y|ies)|findings?)"
    r"|none found|nothing (?:abnormal|found)|not applicable|normal (?:study|scan|brain))\b|^\s*(none|n/a|\[\s*\])\s*\.?\s*$",
    re.I,
)
_BOX_KEYS = ("bbox_2d", "box_2d", "bbox", "box", "bounding_box", "coordinates", "coords")


def parse_answer(task: Task, text: str | None, *, frame: Frame = Frame.pixel_xyxy,
                 sent: tuple[int, int] = (480, 480), original: tuple[int, int] = (480, 480)) -> Parsed:
    try:
        if task is Task.localization:
            return parse_boxes(text, frame=frame, sent=sent, original=original)
        if task is Task.diagnosis:
            return parse_diagnoses(text)
        return parse_caption(text)
    except Exception as exc:  # the contract is "never raises"; a bug here is a counted failure
        return Parsed(error=f"parser error: {type(exc).__name__}: {exc}")


# --- localization -------------------------------------------------------------------------

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
    for quad in quads:
        try:
            values = [float(v) for v in quad]
        except (TypeError, ValueError):
            return Parsed(error=f"box values are not numbers: {quad!r}"[:200])
        if not all(math.isfinite(v) for v in values):
            return Parsed(error=f"box has non-finite values: {quad!r}"[:200])
        boxes.append(to_pixels(values, frame, sent, original))
    return Parsed(prediction=LocalizationPrediction(boxes=boxes))


def _json_candidates(text: str) -> list[str]:
    fenced = [m.strip() for m in _FENCE.findall(text) if m.strip()]
    out = fenced + [text.strip()]
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start >= 0:
        out.append(text[start:].strip())
    return out


def _loads_lenient(s: str) -> Any:
    """json.loads on the longest prefix that parses (handles trailing prose)."""
    try:
        return json.loads(s)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Extra data"):
            return json.loads(s[: exc.pos])
        raise


def _quads_from_json(text: str) -> list[list[Any]] | None:
    """Boxes found in a JSON answer, or None when no candidate parses as JSON."""
    for cand in _json_candidates(text):
        try:
            value = _loads_lenient(cand)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        quads: list[list[Any]] = []
        _walk(value, quads)
        if quads or not _has_number(value):  # {"findings": []} is a valid "no boxes"
            return quads
    return None


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
    return isinstance(v, list) and len(v) == 4 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
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


# --- diagnosis ----------------------------------------------------------------------------

_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):\]-]|[-*\u2022])\s*(.+?)\s*$")
_LEAD = re.compile(r"^(?:the\s+)?(?:most\s+likely\s+|final\s+|primary\s+|differential\s+)?"
                   r"(?:diagnos[ie]s|alternatives?)\s*(?:is|are|:)\s*", re.I)


def _clean_diagnosis(s: str) -> str:
    s = re.sub(r"[*_`#]+", "", s).strip()
    s = _LEAD.sub("", s)
    s = re.split(r"\s+[-\u2013\u2014]\s+|:\s+|\s*\(", s, maxsplit=1)[0]
    return s.strip(" .;,\"'")


def parse_diagnoses(text: str | None) -> Parsed:
    if text is None or not text.strip():
        return Parsed(error="empty answer")
    items = _diagnoses_from_json(text)
    if items is None:
        lines = text.splitlines()
        items = [m.group(1) for line in lines if (m := _LIST_ITEM.match(line))]
        if not items:
            items = [p for line in lines for p in re.split(r";|\s*,\s*(?=[A-Z])", line)]
    cleaned: list[str] = []
    for item in items:
        d = _clean_diagnosis(str(item))
        if d and len(d) <= 200 and d.lower() not in (c.lower() for c in cleaned):
            cleaned.append(d)
    if not cleaned:
        return Parsed(error="no diagnosis found in the answer")
    return Parsed(prediction=DiagnosisPrediction(diagnoses=cleaned[:5]))


def _diagnoses_from_json(text: str) -> list[str] | None:
    for cand in _json_candidates(text):
        try:
            value = _loads_lenient(cand)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            for key in ("diagnoses", "differential", "ranked_diagnoses", "diagnosis"):
                if key in value:
                    value = value[key]
                    break
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            out = []
            for v in value:
                if isinstance(v, dict):
                    v = v.get("diagnosis") or v.get("name") or next(iter(v.values()), "")
                out.append(str(v))
            return out
    return None


# --- captioning ---------------------------------------------------------------------------

def parse_caption(text: str | None) -> Parsed:
    """A caption is free text; JSON {"caption": ...} (prompt v2) is unwrapped."""
    if text is None or not text.strip():
        return Parsed(error="empty answer")
    for cand in _json_candidates(text)[:1] if text.lstrip().startswith(("{", "`")) else []:
        try:
            value = _loads_lenient(cand)
        except (json.JSONDecodeError, ValueError):
            break
        if isinstance(value, dict):
            for key in ("caption", "description", "findings", "text"):
                if isinstance(value.get(key), str):
                    return Parsed(prediction=CaptionPrediction(text=value[key].strip()))
    return Parsed(prediction=CaptionPrediction(text=" ".join(text.split())))

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
    rf"<\|box_start\|>\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
)  # <|box_end|> not required: a truncated answer can lose it after complete numbers
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


def _loads_all(s: str) -> list[Any]:
    """Every JSON value in s, in order ("[..] and also [..]" gives both); raises if none."""
    dec = json.JSONDecoder()
    values: list[Any] = []
    value, end = dec.raw_decode(s)
    values.append(value)
    for _ in range(64):  # bounded: a long run of stray brackets must not cost O(n^2)
        nxt = min((i for i in (s.find("[", end), s.find("{", end)) if i >= 0), default=-1)
        if nxt < 0:
            break
        try:
            value, end = dec.raw_decode(s, nxt)
            values.append(value)
        except (json.JSONDecodeError, ValueError, RecursionError):
            end = nxt + 1
    return values


def _quads_from_json(text: str) -> list[list[Any]] | None:
    """Boxes found in a JSON answer, or None when no candidate parses as JSON."""
    for cand in _json_candidates(text):
        try:
            values = _loads_all(cand)
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


# --- diagnosis ----------------------------------------------------------------------------
# Ranked diagnoses from numbered/bulleted lists, JSON (also truncated), markdown tables,
# labelled lines ("Most likely: X", "Alternatives: A, B") or prose ("... include A, B and C").
# Failures are classified: empty answer, refusal, no diagnosis given, none found.

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_ENUM = r"(?:\(?\d{1,2}\s*[.):\]]|\(?[a-eA-E][.)]|[-*+\u2022\u25cf\u2013](?=\s))"
_LIST_ITEM = re.compile(rf"^(\s*)(?:\*\*)?({_ENUM})(?:\*\*)?\s*(.+?)\s*$")
_LABEL = (r"(?:the\s+)?(?:(?:most\s+(?:likely|probable)|final|primary|main|leading|top|working|"
          r"differential|alternative|other|additional|secondary)[\s-]*)?(?:diagnos[ie]s|dx|ddx|"
          r"differentials?|alternatives?|possibilit(?:y|ies)|considerations?|answer|options?)?"
          r"(?:\s*(?:#|no\.?)?\s*\d)?")
_LABELLED = re.compile(rf"^\s*(?:\*\*|__)?\s*({_LABEL})\s*(?:\*\*|__)?\s*[:=\-\u2013]"
                       r"\s*(?:\*\*|__)?\s*(.*?)\s*$", re.I)
_INLINE_1 = re.compile(r"(?:^|\s)\(?1[.)]\s+\S.*\s\(?2[.)]\s+\S")
_INLINE_SPLIT = re.compile(r"\s+(?=\(?[1-9][.)]\s+\S)")
_SENTENCE_LABEL = re.compile(r"(?<=[.;])\s+(?=(?:\*\*)?[A-Z][\w -]{0,40}:)")  # "X. Differential: A"
_BOLD_HEAD = re.compile(r"^\s*(?:\*\*|__)(.+?)(?:\*\*|__)\s*(.*)$")
_PROSE_FIRST = re.compile(r"\b(?:most\s+(?:likely|probable)\s+diagnosis\s+(?:is|would\s+be)|"
                          r"(?:final|primary|leading)\s+diagnosis\s+is|diagnosis\s+is|"
                          r"(?:is\s+)?(?:most\s+)?consistent\s+with|suggestive\s+of|"
                          r"favou?r(?:s|ed)?)\s*:?\s+([^.;\n]+)", re.I)
_PROSE_REST = re.compile(r"\b(?:differentials?|alternatives?|possibilities|other\s+"
                         r"(?:considerations|diagnoses|options)|differential\s+diagnos[ie]s)\s+"
                         r"(?:include|includes|including|are|would\s+be|:)\s*:?\s*([^.\n]+)", re.I)
_REFUSAL = re.compile(r"\b(?:i\s*(?:'m|am)?\s*(?:cannot|can't|can\s+not|unable|not\s+able)|"
                      r"i'm\s+sorry|i\s+am\s+sorry|as\s+an\s+ai|cannot\s+(?:provide|make|give|offer)|"
                      r"unable\s+to\s+(?:provide|determine|make|give)|not\s+(?:able|possible)\s+to\s+"
                      r"(?:provide|determine|diagnose)|consult\s+a\s+(?:qualified|medical|healthcare))",
                      re.I)
_NO_DX = re.compile(r"^\W*(?:n/?a|none|null|unknown|nil|no\s+(?:diagnosis|answer|idea)|"
                    r"not\s+applicable|cannot\s+be\s+determined|undetermined|-+|\?+|\.+)\W*$", re.I)
_HEDGE_PAREN = re.compile(r"\s*[(\[][^()\[\]]*(?:%|likel|probab|confiden|favou?r|less|more|"
                          r"consider|possible|rank|score|unlikely|\d\.\d)[^()\[\]]*[)\]]", re.I)
_QUALIFIER = re.compile(r"^(?:who\b|grade\b|type\b|idh|h3\b|nos\b|not\s+otherwise|cns\s+who|"
                        r"1p/19q|mgmt|with\b|without\b)", re.I)
_JSON_PRIMARY = ("most_likely", "most_likely_diagnosis", "primary", "primary_diagnosis",
                 "final_diagnosis", "top_diagnosis", "diagnosis", "answer", "leading_diagnosis")
_JSON_LISTS = ("diagnoses", "ranked_diagnoses", "differential", "differentials",
               "differential_diagnosis", "differential_diagnoses", "top5", "top_5", "predictions",
               "alternatives", "alternative_diagnoses", "other", "others", "other_diagnoses")
_JSON_NAME = ("diagnosis", "name", "label", "dx", "condition", "disease", "value")


def _clean_diagnosis(s: str) -> str:
    """One item -> a bare diagnosis name (markup, hedges and explanations dropped)."""
    bold = _BOLD_HEAD.match(s)  # "**Metastasis**: multiple lesions" names the bold part
    if bold and bold.group(2).strip(" :-"):
        head = bold.group(1).strip().rstrip(":")
        label = _LABELLED.match(head + ":")
        s = bold.group(2) if label and label.group(1).strip() else head
    s = re.sub(r"\*\*|__|`|^#+\s*|[*_]{1,2}(?=\w)|(?<=\w)[*_]{1,2}", "", s).strip()
    m = _LABELLED.match(s)
    if m and m.group(1).strip() and m.group(2):
        s = m.group(2)
    s = _HEDGE_PAREN.sub("", s)
    s = re.split(r"\s+[-\u2013\u2014]\s+(?=\S+(?:\s+\S+){2})|:\s+(?=\S+\s+\S)|\.\s+(?=[A-Z])|"
                 r"\s+(?:because|given|as\s+evidenced|supported\s+by|since)\s+", s,
                 maxsplit=1)[0]
    s = re.sub(r"^(?:probably|possibly|likely|most\s+likely|consider|suspected|suspect)\s+", "",
               s.strip(), flags=re.I)
    return s.strip(" .;,:\"'\u201c\u201d|")


def _split_list(s: str) -> list[str]:
    """"A, B and C" -> [A, B, C]; qualifier fragments ("WHO grade II") stay with their item."""
    parts = [p for p in re.split(r";|,\s*(?:and|or)\s+|,|\s+(?:and|or)\s+(?=[^,]*$)", s)
             if p.strip()]
    if "," not in s and ";" not in s:
        parts = [s]
    out: list[str] = []
    for p in parts:
        p = p.strip()
        if out and _QUALIFIER.match(p):
            out[-1] = f"{out[-1]}, {p}"
        else:
            out.append(p)
    return out


def _from_table(lines: list[str]) -> list[str]:
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines
            if ln.strip().startswith("|") and not re.fullmatch(r"[\s|:\-]+", ln)]
    if len(rows) < 2:
        return []
    head = [c.lower() for c in rows[0]]
    col = next((i for i, c in enumerate(head) if "diagnos" in c or c in ("dx", "condition")), None)
    out = []
    for r in rows[1:] if col is not None or not head[0].isdigit() else rows:
        cells = [c for c in r if c and not re.fullmatch(r"[\d.#%]+", c)]
        out.append(r[col] if col is not None and col < len(r) else (cells[0] if cells else ""))
    return out


def _from_lines(text: str) -> list[str]:
    lines = [part for ln in text.splitlines() for sent in _SENTENCE_LABEL.split(ln)
             for part in (_INLINE_SPLIT.split(sent) if _INLINE_1.search(sent) else [sent])]
    if sum(ln.strip().startswith("|") for ln in lines) >= 2:
        return _from_table(lines)
    items = [(m.group(1), m.group(2), m.group(3)) for ln in lines if (m := _LIST_ITEM.match(ln))]
    numbered = [i for i in items if i[1][0].isdigit() or i[1][0] == "("]
    if numbered:  # sub-bullets under numbered items are explanations, not diagnoses
        items = numbered
    elif items:
        top = min(len(i[0]) for i in items)
        items = [i for i in items if len(i[0]) == top]
    out: list[str] = []
    labelled = [m for ln in lines if (m := _LABELLED.match(ln)) and m.group(1).strip()]
    for m in labelled:  # "Most likely: X" / "Alternatives: A, B" (a list below counts too)
        if m.group(2) and not _LIST_ITEM.match(m.group(2)):
            out += _split_list(m.group(2)) if re.search(r"alternat|differential|other|possib|"
                                                        r"consider", m.group(1), re.I) \
                else [m.group(2)]
    if items:
        return out + [t for _, _, t in items]
    if out:
        return out
    flat = " ".join(ln.strip() for ln in lines if ln.strip())
    first = [m.group(1) for m in _PROSE_FIRST.finditer(flat)][:1]
    rest = [p for m in _PROSE_REST.finditer(flat) for p in _split_list(m.group(1))]
    if first or rest:
        return first + rest
    bare = _split_list(flat) if flat.count(",") >= 2 or ";" in flat else [flat]
    return bare if all(len(b.split()) <= 12 for b in bare) else []  # prose, no diagnosis


def _json_items(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        first = next((value[k] for k in _JSON_PRIMARY if isinstance(value.get(k), str)), None)
        lists = [v for k in _JSON_LISTS if isinstance(v := value.get(k), (list, str))]
        if first is None and not lists:
            return None
        out = [first] if first else []
        for v in lists:
            out += _json_items(v) or []
        return out
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and isinstance(v.get("rank"), (int, float))
                         for v in value):
            value = sorted(value, key=lambda v: v["rank"])
        out = []
        for v in value:
            if isinstance(v, dict):
                v = next((v[k] for k in _JSON_NAME if isinstance(v.get(k), str)), None)
            elif isinstance(v, list) and v and isinstance(v[0], str):
                v = v[0]  # ["Glioblastoma", 0.6]
            if isinstance(v, str):
                out.append(v)
        return out if out or not value else None  # [1, 2] is not a diagnosis list
    return None


def _diagnoses_from_json(text: str) -> list[str] | None:
    for cand in _json_candidates(text):
        try:
            value = _loads_lenient(cand)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        items = _json_items(value)
        if items is not None:  # {"diagnoses": []} is an answer with none: no fallback
            return items
    body = text.strip().lstrip("`").removeprefix("json").strip()
    if body.startswith(("{", "[")):  # truncated JSON: the complete strings that are not keys
        found = [m.group(1) for m in re.finditer(r'"((?:[^"\\]|\\.)*)"(\s*:)?', body)
                 if not m.group(2) and m.group(1).lower() not in _JSON_PRIMARY + _JSON_LISTS]
        return found or None
    return None


def parse_diagnoses(text: str | None) -> Parsed:
    """Up to five ranked diagnoses; a classified error when there is none."""
    if text is None or not text.strip():
        return Parsed(error="empty answer")
    body = _THINK.sub("", text).strip()
    if not body:
        return Parsed(error="empty answer (reasoning only)")
    items = _diagnoses_from_json(body)
    if items is None:
        items = _from_lines(body)
    cleaned: list[str] = []
    for item in items:
        d = _clean_diagnosis(str(item))
        if (d and len(d) <= 150 and len(d.split()) <= 20 and re.search(r"[A-Za-z]", d)
                and not _NO_DX.match(d) and not _REFUSAL.search(d)
                and d.lower() not in (c.lower() for c in cleaned)):
            cleaned.append(d)
    if cleaned:
        return Parsed(prediction=DiagnosisPrediction(diagnoses=cleaned[:5]))
    if _REFUSAL.search(body):
        return Parsed(error="refusal: the model declined to give a diagnosis")
    if _NO_DX.match(body) or all(_NO_DX.match(str(i)) for i in items if str(i).strip()) and items:
        return Parsed(error="no diagnosis given (N/A, none, unknown)")
    return Parsed(error="no diagnosis found in the answer")


# --- captioning ---------------------------------------------------------------------------

_IMAGING_WORDS = re.compile(
    r"\b(axial|sagittal|coronal|t1|t2|flair|dwi|adc|swi|lesions?|mass|hyper|hypo|"
    r"hyperintens\w*|hypointens\w*|enhanc\w*|signal|abnormal\w*|normal|ventric\w*|"
    r"white\s+matter|cortex|cortical|edema|oedema|infarct\w*|tumou?r|cyst\w*)\b", re.I)
_CAPTION_FIELD = re.compile(r'"(caption|description|findings|text)"\s*:\s*"((?:[^"\\]|\\.)*)', re.S)


def parse_caption(text: str | None) -> Parsed:
    """A caption is free text; JSON {"caption": ...} (prompt v2) is unwrapped.

    Failures: an empty answer, or a refusal that says nothing about the image ("I'm sorry, I
    can't interpret medical images"). A refusal phrase next to imaging content is a caption.
    """
    if text is None or not text.strip():
        return Parsed(error="empty answer")
    stripped = text.strip()
    if stripped.startswith(("{", "`", "[")):
        for cand in _json_candidates(stripped)[:1]:
            try:
                value = _loads_lenient(cand)
            except (json.JSONDecodeError, ValueError, RecursionError):
                value = None
            if isinstance(value, dict):
                for key in ("caption", "description", "findings", "text"):
                    if isinstance(value.get(key), str) and value[key].strip():
                        return Parsed(prediction=CaptionPrediction(text=" ".join(value[key].split())))
                parts = [str(v) for v in value.values()
                         if isinstance(v, (str, int, float)) and str(v).strip()]
                if parts:
                    return Parsed(prediction=CaptionPrediction(text=" ".join(" ".join(parts).split())))
                return Parsed(error="JSON answer without a caption")
        m = _CAPTION_FIELD.search(stripped)  # truncated JSON: keep what arrived
        if m and m.group(2).strip():
            return Parsed(prediction=CaptionPrediction(text=" ".join(m.group(2).split())))
    if _REFUSAL.search(stripped[:160]) and not _IMAGING_WORDS.search(stripped):
        return Parsed(error="refusal: the model declined to describe the image")
    return Parsed(prediction=CaptionPrediction(text=" ".join(stripped.split())))

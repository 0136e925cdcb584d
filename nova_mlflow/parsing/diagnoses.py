"""Diagnosis answers -> up to five ranked diagnoses, or a classified failure.

Ranked diagnoses come from numbered/bulleted lists, JSON (also truncated), markdown tables,
labelled lines ("Most likely: X", "Alternatives: A, B") or prose ("... include A, B and C").
Failures are classified: empty answer, refusal, no diagnosis given, none found.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nova_mlflow.parsing.text import REFUSAL, json_candidates, loads_lenient
from nova_mlflow.schemas import DiagnosisPrediction, Parsed

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
    for cand in json_candidates(text):
        try:
            value = loads_lenient(cand)
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
                and not _NO_DX.match(d) and not REFUSAL.search(d)
                and d.lower() not in (c.lower() for c in cleaned)):
            cleaned.append(d)
    if cleaned:
        return Parsed(prediction=DiagnosisPrediction(diagnoses=cleaned[:5]))
    if REFUSAL.search(body):
        return Parsed(error="refusal: the model declined to give a diagnosis")
    if _NO_DX.match(body) or all(_NO_DX.match(str(i)) for i in items if str(i).strip()) and items:
        return Parsed(error="no diagnosis given (N/A, none, unknown)")
    return Parsed(error="no diagnosis found in the answer")

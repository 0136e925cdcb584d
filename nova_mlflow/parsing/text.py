"""What the parsers of every task share: JSON found in free text, refusal phrases."""

from __future__ import annotations

import json
import re
from typing import Any

FENCE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)(?:```|$)", re.S)
REFUSAL = re.compile(r"\b(?:i\s*(?:'m|am)?\s*(?:cannot|can't|can\s+not|unable|not\s+able)|"
                      r"i'm\s+sorry|i\s+am\s+sorry|as\s+an\s+ai|cannot\s+(?:provide|make|give|offer)|"
                      r"unable\s+to\s+(?:provide|determine|make|give)|not\s+(?:able|possible)\s+to\s+"
                      r"(?:provide|determine|diagnose)|consult\s+a\s+(?:qualified|medical|healthcare))",
                      re.I)


def json_candidates(text: str) -> list[str]:
    fenced = [m.strip() for m in FENCE.findall(text) if m.strip()]
    out = fenced + [text.strip()]
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start >= 0:
        out.append(text[start:].strip())
    return out


def loads_lenient(s: str) -> Any:
    """json.loads on the longest prefix that parses (handles trailing prose)."""
    try:
        return json.loads(s)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Extra data"):
            return json.loads(s[: exc.pos])
        raise


def loads_all(s: str) -> list[Any]:
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

"""Captioning answers -> the caption text (JSON {"caption": ...} unwrapped)."""

from __future__ import annotations

import json
import re

from nova_mlflow.parsing.text import REFUSAL, json_candidates, loads_lenient
from nova_mlflow.schemas import CaptionPrediction, Parsed

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
        for cand in json_candidates(stripped)[:1]:
            try:
                value = loads_lenient(cand)
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
    if REFUSAL.search(stripped[:160]) and not _IMAGING_WORDS.search(stripped):
        return Parsed(error="refusal: the model declined to describe the image")
    return Parsed(prediction=CaptionPrediction(text=" ".join(stripped.split())))

"""NOVA's per-case metrics as MLflow GenAI scorers, for `mlflow.genai.evaluate`.

A team evaluating its own predict function gets the same feedback names, values and
rationales a benchmark run logs on its traces: both come from scoring's per-case rows
(built by the same row builders) through scoring.feedback.feedback_for.

Scorer `outputs` may be the raw answer text or a dict with "text" (and "frame" for boxes in
a model's own frame); the image size is read from `inputs["image"]` when given, else 480 x 480.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Feedback
from mlflow.genai.scorers import scorer

from nova_mlflow.metrics.language import words
from nova_mlflow.schemas import Box, Frame, Task
from nova_mlflow.scoring.feedback import (
    DEFAULT_SIZE,
    STATUS_FEEDBACK,
    caption_row,
    diagnosis_row,
    feedback_for,
    localization_row,
)
from nova_mlflow.tracking.assessments import SOURCE


def _text(outputs: Any) -> str | None:
    if isinstance(outputs, Mapping):
        return outputs.get("text", outputs.get("answer"))
    return None if outputs is None else str(outputs)


def _size(inputs: Any) -> tuple[int, int]:
    image = inputs.get("image") if isinstance(inputs, Mapping) else None
    if isinstance(image, Mapping) and image.get("width") and image.get("height"):
        return int(image["width"]), int(image["height"])
    return DEFAULT_SIZE


def _feedbacks(task: Task, row: Mapping[str, Any]) -> list[Feedback]:
    return [Feedback(name=name, value=value, rationale=rationale, source=SOURCE)
            for name, (value, rationale) in feedback_for(task, row).items()
            if name != STATUS_FEEDBACK]


@scorer(name="nova_localization_iou")
def nova_localization_iou(inputs: Any = None, outputs: Any = None,
                          expectations: dict | None = None) -> list[Feedback]:
    """Best IoU, hit at IoU 0.3 / 0.5 and AP@0.3 of the answer's boxes vs `gold_boxes`."""
    gold_raw = (expectations or {}).get("gold_boxes")
    if gold_raw is None:
        return []
    if isinstance(gold_raw, str):
        gold_raw = json.loads(gold_raw)
    gold = [Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for b in gold_raw]
    frame = Frame(outputs.get("frame") or Frame.pixel_xyxy.value) \
        if isinstance(outputs, Mapping) else Frame.pixel_xyxy
    return _feedbacks(Task.localization, localization_row(_text(outputs), gold, frame,
                                                          _size(inputs)))


@scorer(name="nova_caption_keywords")
def nova_caption_keywords(outputs: Any = None, expectations: dict | None = None) -> list[Feedback]:
    """Clinical / modality keyword F1 (hits, misses, extras as rationale), METEOR, status."""
    caption = (expectations or {}).get("expert_caption")
    if not words(caption):
        return []
    return _feedbacks(Task.captioning, caption_row(_text(outputs), caption))


@scorer(name="nova_diagnosis_topk")
def nova_diagnosis_topk(outputs: Any = None, expectations: dict | None = None) -> list[Feedback]:
    """Top-1 / top-5 with the offline matcher's reason as rationale, and the match rank."""
    truth = (expectations or {}).get("final_diagnosis")
    if not truth:
        return []
    return _feedbacks(Task.diagnosis, diagnosis_row(_text(outputs), str(truth)))


NOVA_SCORERS = [nova_localization_iou, nova_caption_keywords, nova_diagnosis_topk]

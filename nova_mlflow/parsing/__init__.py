"""Raw model text -> task prediction. Never raises: a bad answer is a counted parse failure.

One module per task (boxes, captions, diagnoses); `frames` converts a model's box frame
into pixels of the original image, the one conversion point. An answer is read by the trace
of its call (outputs.parsed) and again by scoring: `parse_answer` remembers its results
(they are immutable), so each answer is parsed once per process.
"""

from __future__ import annotations

from functools import lru_cache

from nova_mlflow.parsing.boxes import parse_boxes
from nova_mlflow.parsing.captions import parse_caption
from nova_mlflow.parsing.diagnoses import parse_diagnoses
from nova_mlflow.schemas import Frame, Parsed, Task


def parse_answer(task: Task, text: str | None, *, frame: Frame = Frame.pixel_xyxy,
                 sent: tuple[int, int] = (480, 480), original: tuple[int, int] = (480, 480)) -> Parsed:
    return _parse(task, text, frame, tuple(sent), tuple(original))


@lru_cache(maxsize=32768)
def _parse(task: Task, text: str | None, frame: Frame, sent: tuple[int, int],
           original: tuple[int, int]) -> Parsed:
    try:
        if task is Task.localization:
            return parse_boxes(text, frame=frame, sent=sent, original=original)
        if task is Task.diagnosis:
            return parse_diagnoses(text)
        return parse_caption(text)
    except Exception as exc:  # the contract is "never raises"; a bug here is a counted failure
        return Parsed(error=f"parser error: {type(exc).__name__}: {exc}")


__all__ = ["parse_answer", "parse_boxes", "parse_caption", "parse_diagnoses"]

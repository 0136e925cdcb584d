"""The names every layer shares, as plain enums: the tasks and the box coordinate frames.

Why apart from schemas.py: the command line needs them to describe its flags, and
`nova-mlflow --help` must not import pydantic (or anything heavier) to print them.
schemas.py re-exports both; import them from either.
"""

from __future__ import annotations

from enum import Enum


class Task(str, Enum):
    localization = "localization"
    captioning = "captioning"
    diagnosis = "diagnosis"


ALL_TASKS: tuple[Task, ...] = (Task.localization, Task.captioning, Task.diagnosis)


class Frame(str, Enum):
    """The coordinate frame a model writes its boxes in (parsing/frames.py converts)."""

    pixel_xyxy = "pixel_xyxy"  # our prompts: [x1, y1, x2, y2] in pixels of the image sent
    gemini_yxyx_1000 = "gemini_yxyx_1000"  # Gemini 2.x box_2d: [ymin, xmin, ymax, xmax] on 0-1000
    qwen25_resized_xyxy = "qwen25_resized_xyxy"  # Qwen2.5-VL: pixels of the smart_resize'd image
    qwen2_xyxy_1000 = "qwen2_xyxy_1000"  # Qwen2-VL: [x1, y1, x2, y2] on 0-1000

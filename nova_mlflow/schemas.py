"""Pydantic contracts shared by every layer.

Boxes are always pixel x1, y1, x2, y2 of the original image once they are inside the
project; converting other frames into this one happens in frames.py (and for the dataset's
x/y/width/height dicts in data/boxes.py), nowhere else.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nova_mlflow.names import ALL_TASKS, Frame, Task  # noqa: F401  (re-exported: schemas is their home too)

#: Version of the prediction / answer records written by this package. Bump it together with
#: a migration function in migrations.py, so old runs can still be re-scored.
#: v1: filename, task, text, status, error, model, prompt_version, latency, tokens.
#: v2: adds `frame` (the box frame the text is written in) and what was sent
#:     (image_sha256, image_size), plus attempts and cached.
SCHEMA_VERSION = 2

#: Version of the metric definitions (what a logged metric and a per-case table column mean).
#: `compare` and `gate` refuse runs whose versions differ, since their figures measure
#: different things. Runs that logged none are version 1.
#: v1: the definitions before 2026-12 (no tag or param logged).
#: v2: unique captions as distinct strings (GT 729), top-k / coverage / entropy leave out
#:     truths naming no diagnosis, the authors' hit rate (hit30, hit50, mean_iou), and the
#:     per-case tables keep every component the case-clustered statistics resample
#:     (analysis/metric_specs.py), unrounded.
METRICS_VERSION = 2

IMAGE_SIZE = 480  # NOVA slices are 480 x 480


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GenerationSettings(BaseModel):
    """Sampling settings sent with every request (part of the response-cache key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, gt=0, le=32768)
    seed: int | None = 0


class Box(Frozen):
    """An axis-aligned box in pixel coordinates of the original image (x right, y down)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @model_validator(mode="after")
    def _ordered_and_finite(self) -> Box:
        vals = (self.x1, self.y1, self.x2, self.y2)
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"box coordinates must be finite, got {vals}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box corners out of order: {vals}")
        return self

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    def clip(self, width: float, height: float) -> Box:
        return Box(
            x1=min(max(self.x1, 0.0), width),
            y1=min(max(self.y1, 0.0), height),
            x2=min(max(self.x2, 0.0), width),
            y2=min(max(self.y2, 0.0), height),
        )

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


class RaterBox(Box):
    rater: str


Plane = Literal["axial", "sagittal", "coronal"]
Sex = Literal["female", "male"]


class Derived(Frozen):
    """Fields NOT in the published data: read from free text by data/derived.py.

    They are best-effort (a caption may name no plane); use them to split results, never as
    ground truth for scoring.
    """

    plane: Plane | None = None
    sequence: str | None = None
    age: int | None = None
    sex: Sex | None = None


class Case(Frozen):
    """One NOVA slice with its annotations. The image is referenced, not held in memory."""

    filename: str
    case_id: str
    scan_id: int
    image_path: Path
    image_width: int = IMAGE_SIZE
    image_height: int = IMAGE_SIZE
    caption: str | None = None
    clinical_history: str = ""
    differential_diagnosis: list[str] = Field(default_factory=list)
    final_diagnosis: str
    title: str | None = None
    gold_boxes: list[Box] = Field(default_factory=list)  # clipped to the image
    #: the gold boxes as the data writes them (x + width may pass the edge: 5 NOVA boxes do);
    #: the authors' hit rate reads these. Empty: the same as gold_boxes.
    gold_boxes_as_written: list[Box] = Field(default_factory=list)
    rater_boxes: list[RaterBox] = Field(default_factory=list)
    derived: Derived = Field(default_factory=Derived)

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, v: str) -> str:
        if not v or v != Path(v).name or v in {".", ".."} or "\\" in v:
            raise ValueError(f"filename must be a plain file name, got {v!r}")
        return v


class Answer(BaseModel):
    """One raw model answer: the unit of the outputs JSONL (interface.md) and of the cache.

    Only filename, task and text are required when reading files written elsewhere
    (data/answers.py holds the rules); text None with status "answered" means no answer
    (scored as missing). Extra fields are kept, so they reach the run's answers.jsonl.
    """

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    filename: str
    task: Task
    text: str | None = None
    status: Literal["answered", "refused", "api_error"] = "answered"
    error: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    frame: str | None = None  # v2: coordinate frame of any boxes in `text`
    attempts: int | None = None
    cached: bool | None = None
    image_sha256: str | None = None  # what was actually sent, so the frame applies to it
    image_size: tuple[int, int] | None = None
    trace_id: str | None = None  # the MLflow trace of this call (additive: no version bump)


class LocalizationPrediction(Frozen):
    schema_version: int = SCHEMA_VERSION
    boxes: list[Box] = Field(default_factory=list)  # in emitted order
    #: the same boxes in pixels, corners as the model wrote them (not ordered, not clipped):
    #: what the authors' hit rate (metrics/hit_rate.py) reads
    as_written: list[tuple[float, float, float, float]] = Field(default_factory=list)


class CaptionPrediction(Frozen):
    schema_version: int = SCHEMA_VERSION
    text: str = ""


class DiagnosisPrediction(Frozen):
    schema_version: int = SCHEMA_VERSION
    diagnoses: list[str] = Field(default_factory=list, max_length=5)  # ranked, best first


Prediction = LocalizationPrediction | CaptionPrediction | DiagnosisPrediction


class Parsed(Frozen):
    """Result of parsing one raw answer: a prediction, or the reason there is none."""

    prediction: Prediction | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None

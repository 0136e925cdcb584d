"""The one interface every model sits behind: an async `generate(request) -> Response`.

A Request carries only what a model may see for its task (image bytes and/or text), never
the case's annotations, so no provider (the baseline included) can peek at the answer key.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from nova_mlflow.schemas import Task


class GenerationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, gt=0, le=32768)
    seed: int | None = 0


class Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Task
    filename: str
    case_id: str  # lets retrieval baselines leave the whole case out
    prompt: str  # rendered text
    prompt_version: str
    image_png: bytes | None = Field(default=None, repr=False)
    image_size: tuple[int, int] | None = None  # (width, height) of the image sent
    settings: GenerationSettings = GenerationSettings()

    @property
    def image_sha256(self) -> str | None:
        return hashlib.sha256(self.image_png).hexdigest() if self.image_png is not None else None


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    refused: bool = False


@runtime_checkable
class Provider(Protocol):
    name: str  # provider kind, e.g. "baseline", "openai"
    model: str  # model name as the user gave it

    async def generate(self, request: Request) -> Response: ...

"""The one interface every model sits behind: an async `generate(request) -> Response`.

A Request carries only what a model may see for its task (image bytes and/or text), never
the case's annotations, so no provider (the baseline included) can peek at the answer key.
Providers do not retry: the runner does, the same way for every SDK, using `classify`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nova_mlflow.schemas import GenerationSettings, Task


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
    #: sha256 of `image_png`: given by a caller that already knows it (the dataset hashed
    #: every image when it was loaded), else computed here; it keys the response cache
    image_sha256: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _hash_image(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("image_png") is not None \
                and not data.get("image_sha256"):
            data = {**data, "image_sha256": hashlib.sha256(data["image_png"]).hexdigest()}
        return data


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    refused: bool = False
    cached: bool = False
    trace_id: str | None = None  # a stored response: the MLflow trace of the call that made it


class NoAnswer(LookupError):
    """The provider has no answer for this request (replay file without the line): missing."""


@runtime_checkable
class Provider(Protocol):
    name: str  # provider kind, e.g. "baseline", "openai"
    model: str  # model name as the user gave it

    async def generate(self, request: Request) -> Response: ...


@dataclass(frozen=True)
class ErrorInfo:
    retryable: bool
    status: int | None = None
    retry_after: float | None = None  # seconds, from the server's Retry-After


_TRANSIENT_NAMES = ("Timeout", "Connect", "RemoteProtocol", "ServerDisconnected", "ReadError",
                    "IncompleteRead", "ClientPayload", "Disconnected", "WriteError")


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int) and 100 <= v < 600:
            return v
    resp = getattr(exc, "response", None)
    v = getattr(resp, "status_code", None) or getattr(resp, "status", None)
    return v if isinstance(v, int) else None


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, if the server sent one."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        ra = headers.get("retry-after")
    except AttributeError:
        return None
    if ra is None:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            from datetime import datetime, timezone

            return max(0.0, (parsedate_to_datetime(ra) - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None


def classify(exc: BaseException) -> ErrorInfo:
    """Retry 408/409/429/5xx, timeouts, dropped connections and truncated bodies; not 4xx."""
    status = _status_of(exc)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    after = retry_after_seconds(headers)
    if status is not None:
        return ErrorInfo(status in (408, 409, 429) or status >= 500, status, after)
    if isinstance(exc, (TimeoutError, ConnectionError, json.JSONDecodeError)):
        return ErrorInfo(True)
    names = " ".join(t.__name__ for t in type(exc).__mro__)
    if any(n in names for n in _TRANSIENT_NAMES):
        return ErrorInfo(True)
    if "ValidationError" in names or "JSONDecode" in names or "Decoding" in names:
        return ErrorInfo(True)  # a truncated or garbled body: the next attempt may be whole
    return ErrorInfo(False)

"""Box coordinate frames of model families -> pixel xyxy of the original image.

The frame is declared per model (catalog below or an explicit flag) and recorded with the
run; it is never guessed from the ground truth, which would inflate scores.
"""

from __future__ import annotations

import math
from nova_mlflow.schemas import Box, Frame


#: Model name (or prefix) -> frame. Longest matching prefix wins.
CATALOG: dict[str, Frame] = {
    "baseline": Frame.pixel_xyxy,
    "gpt-4o": Frame.pixel_xyxy,
    "gpt-4.1": Frame.pixel_xyxy,
    "gpt-5": Frame.pixel_xyxy,
    "gemini-2": Frame.gemini_yxyx_1000,
    "gemini-3": Frame.gemini_yxyx_1000,
    "qwen2.5-vl": Frame.qwen25_resized_xyxy,
    "qwen2-vl": Frame.qwen2_xyxy_1000,
}


def frame_for(model: str, explicit: str | Frame | None = None) -> Frame:
    """The declared frame; unknown models need an explicit one (ValueError names the flag)."""
    if explicit:
        return Frame(explicit)
    name = model.split(":", 1)[-1].lower()
    name = name.rsplit("/", 1)[-1]
    matches = [k for k in CATALOG if name.startswith(k)]
    if not matches:
        raise ValueError(
            f"no coordinate frame known for model {model!r}; pass --frame "
            f"({', '.join(f.value for f in Frame)})"
        )
    return CATALOG[max(matches, key=len)]


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """Qwen2.5-VL's processor resize (multiples of 28 within a pixel budget): 480 -> 476."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = math.floor(height / beta / factor) * factor
        w = math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def to_pixels_as_written(values: list[float], frame: Frame, sent: tuple[int, int],
                        original: tuple[int, int]) -> tuple[float, float, float, float]:
    """Four numbers in `frame` for an image sent at `sent` (w, h) -> x1, y1, x2, y2 in pixels
    of `original` (w, h), corners as the model wrote them: not ordered, not clipped (the
    authors' hit rate reads boxes this way; an inverted box then overlaps nothing)."""
    a, b, c, d = (float(v) for v in values)
    sw, sh = sent
    ow, oh = original
    if frame is Frame.gemini_yxyx_1000:
        return b / 1000 * ow, a / 1000 * oh, d / 1000 * ow, c / 1000 * oh
    if frame is Frame.qwen2_xyxy_1000:
        return a / 1000 * ow, b / 1000 * oh, c / 1000 * ow, d / 1000 * oh
    if frame is Frame.qwen25_resized_xyxy:
        rh, rw = smart_resize(sh, sw)
        return a * ow / rw, b * oh / rh, c * ow / rw, d * oh / rh
    return a * ow / sw, b * oh / sh, c * ow / sw, d * oh / sh


def to_pixels(values: list[float], frame: Frame, sent: tuple[int, int],
              original: tuple[int, int]) -> Box:
    """Four numbers in `frame` for an image sent at `sent` (w, h) -> Box on `original` (w, h).

    Swapped corners are normalised; the result is clipped to the original image.
    """
    x1, y1, x2, y2 = to_pixels_as_written(values, frame, sent, original)
    ow, oh = original
    return Box(x1=min(x1, x2), y1=min(y1, y2), x2=max(x1, x2), y2=max(y1, y2)).clip(ow, oh)


def from_pixels(box: Box, frame: Frame, sent: tuple[int, int], original: tuple[int, int]) -> list[float]:
    """Inverse of to_pixels (used to write answers in a model's frame, e.g. round-trip tests)."""
    sw, sh = sent
    ow, oh = original
    if frame is Frame.gemini_yxyx_1000:
        return [box.y1 / oh * 1000, box.x1 / ow * 1000, box.y2 / oh * 1000, box.x2 / ow * 1000]
    if frame is Frame.qwen2_xyxy_1000:
        return [box.x1 / ow * 1000, box.y1 / oh * 1000, box.x2 / ow * 1000, box.y2 / oh * 1000]
    if frame is Frame.qwen25_resized_xyxy:
        rh, rw = smart_resize(sh, sw)
        return [box.x1 * rw / ow, box.y1 * rh / oh, box.x2 * rw / ow, box.y2 * rh / oh]
    return [box.x1 * sw / ow, box.y1 * sh / oh, box.x2 * sw / ow, box.y2 * sh / oh]

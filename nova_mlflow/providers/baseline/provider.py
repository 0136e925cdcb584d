"""The offline baseline model: classical detector, rule-based caption, TF-IDF retrieval.

It sees exactly what a VLM would (the PNG sent, or the rendered diagnosis prompt) and writes
answers as text in the pixel_xyxy frame, so its outputs flow through the same parser,
metrics and logging as any API model. Retrieval is leave-one-case-out over the other cases'
history + caption, so a case never retrieves its own diagnosis.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence

import numpy as np

from nova_mlflow.providers import register
from nova_mlflow.providers.base import Request, Response
from nova_mlflow.schemas import Case, Task


class BaselineProvider:
    name = "baseline"
    cacheable = False  # answers depend on local inputs, and cost nothing

    def __init__(self, model: str = "baseline", cases: Sequence[Case] = (), **_: object) -> None:
        from nova_mlflow.providers.baseline.retrieval import RetrievalIndex

        self.model = model
        docs = [(c.filename, c.case_id, f"{c.clinical_history} {c.caption or ''}", c.final_diagnosis)
                for c in cases]
        self._index = RetrievalIndex(docs) if docs else None

    async def generate(self, request: Request) -> Response:
        return await asyncio.to_thread(self._answer, request)

    def _answer(self, request: Request) -> Response:
        if request.task is Task.diagnosis:
            if self._index is None:
                return Response(text="")
            ranked = self._index.rank(request.prompt, exclude_group=request.case_id, k=5)
            return Response(text="\n".join(f"{i}. {d}" for i, d in enumerate(ranked, start=1)))
        image = _decode(request.image_png)
        from nova_mlflow.providers.baseline.detector import detect_boxes

        boxes = detect_boxes(image)
        if request.task is Task.localization:
            if not boxes:
                return Response(text="no target")
            return Response(text=json.dumps([[round(v, 1) for v in b] for b in boxes]))
        from nova_mlflow.providers.baseline.describe import describe, lesion_signal
        from nova_mlflow.providers.baseline.plane import guess_plane

        signals = [lesion_signal(image, b) for b in boxes]
        return Response(text=describe(boxes, image.shape, plane=guess_plane(image),
                                      mean_signal=signals))


def _decode(png: bytes | None) -> np.ndarray:
    from PIL import Image

    if png is None:
        raise ValueError("the baseline needs the image for this task")
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("L"))


@register("baseline")
def _factory(model: str = "baseline", **context: object) -> BaselineProvider:
    return BaselineProvider(model=model, **context)

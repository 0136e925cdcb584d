"""A registered NOVA configuration as an MLflow pyfunc (models from code; logged by gate).

The file itself is the model: `mlflow.pyfunc.log_model(python_model=<this file>,
model_config=...)` copies it into the model, and loading runs it. It holds no weights:
the configuration (model name, provider, box frame, prompt texts per task, generation
settings) is the model_config, and answers come from nova_mlflow's provider layer, so the
serving environment needs nova-mlflow installed (and the provider's API key, if any).

model_config keys: model, provider, frame, tasks, prompts {task: {name, version, sha256,
text}}, settings {temperature, max_tokens, seed}, base_url, corpus, concurrency.
`corpus` only matters for model "baseline", whose diagnosis retrieves from other cases: a
dataset spec ("demo", a directory); if absent or unreadable the index is empty and the
baseline answers diagnosis with an empty text. Override at load time with
`mlflow.pyfunc.load_model(uri, model_config={"corpus": PATH})`.

predict(DataFrame) columns: task, filename, and as the task needs clinical_history,
caption, image_path or image_png (PNG bytes, or base64 text when served as JSON); optional
case_id (the baseline leaves that case out of retrieval; without it, nothing is left out).
It returns one row per input row: task, filename, text (raw answer), prediction (the parsed
prediction as JSON, or null), error. Calls are made concurrently, once each (no retries:
that is the benchmark runner's job).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import logging
import math
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

log = logging.getLogger("nova_mlflow")

IMAGE_TASKS = ("localization", "captioning")  # the tasks whose request carries the image


class NovaConfigModel(mlflow.pyfunc.PythonModel):
    """Answers NOVA cases with the registered configuration."""

    def load_context(self, context: Any) -> None:
        self.config: dict[str, Any] = dict(getattr(context, "model_config", None) or {})
        self._cases = _corpus(self.config.get("corpus")) if self.config.get("model") == "baseline" else []
        self._provider: Any = None

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        missing = {"task", "filename"} - set(model_input.columns)
        if missing:
            raise ValueError(f"model input lacks column(s) {sorted(missing)}")
        rows = model_input.to_dict("records")
        return pd.DataFrame(_run(self._answer_all(rows)),
                            columns=["task", "filename", "text", "prediction", "error"])

    def provider(self) -> Any:
        """Created on first use, so loading works without a key or network."""
        if self._provider is None:
            from nova_mlflow.providers import create_provider

            self._provider = create_provider(self.config["model"], cases=self._cases,
                                             base_url=self.config.get("base_url"))
        return self._provider

    async def _answer_all(self, rows: list[dict]) -> list[dict]:
        gate = asyncio.Semaphore(int(self.config.get("concurrency") or 4))

        async def one(row: dict) -> dict:
            async with gate:
                return await self._answer(row)

        return list(await asyncio.gather(*(one(r) for r in rows)))

    async def _answer(self, row: dict) -> dict:
        from nova_mlflow.schemas import Frame
        from nova_mlflow.parsing import parse_answer
        from nova_mlflow.schemas import Task

        out = {"task": str(row.get("task")), "filename": str(row.get("filename")), "text": None,
               "prediction": None, "error": None}
        try:
            task = Task(out["task"])
            request, size = self._request(task, row)
            response = await self.provider().generate(request)
        except Exception as exc:  # noqa: BLE001 (one bad row or failed call must not sink the batch)
            out["error"] = f"{type(exc).__name__}: {exc}"
            return out
        out["text"] = response.text
        parsed = parse_answer(task, response.text, frame=Frame(self.config.get("frame", "pixel_xyxy")),
                              sent=size, original=size)
        if parsed.ok:
            out["prediction"] = parsed.prediction.model_dump_json()  # type: ignore[union-attr]
        else:
            out["error"] = parsed.error
        return out

    def _request(self, task: Any, row: dict) -> tuple[Any, tuple[int, int]]:
        """The same request `nova-mlflow run` would send (benchmark.make_request)."""
        from nova_mlflow.prompts import Prompt
        from nova_mlflow.providers.base import GenerationSettings, Request
        from nova_mlflow.schemas import IMAGE_SIZE

        spec = (self.config.get("prompts") or {}).get(task.value)
        if spec is None:
            raise ValueError(f"this configuration has no prompt for task {task.value!r}")
        png = _image(row)
        size = _png_size(png) if png is not None else (IMAGE_SIZE, IMAGE_SIZE)
        if task.value in IMAGE_TASKS and png is None:
            raise ValueError(f"task {task.value} needs image_path or image_png")
        prompt = Prompt(task=task, name=spec.get("name", ""), version=spec.get("version", ""),
                        template=spec["text"], meta={})
        values = {"width": size[0], "height": size[1],
                  "clinical_history": _text(row.get("clinical_history")) or "(not given)",
                  "caption": _text(row.get("caption")) or "(not given)"}
        sent = png if task.value in IMAGE_TASKS else None
        request = Request(
            task=task, filename=str(row["filename"]), case_id=_text(row.get("case_id")),
            prompt=prompt.render(**{k: v for k, v in values.items() if k in prompt.variables}),
            prompt_version=prompt.version, image_png=sent,
            image_size=size if sent is not None else None,
            settings=GenerationSettings(**(self.config.get("settings") or {})))
        return request, size


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _image(row: dict) -> bytes | None:
    png = row.get("image_png")
    if isinstance(png, (bytes, bytearray)):
        return bytes(png)
    if isinstance(png, str) and png:
        return base64.b64decode(png)
    path = _text(row.get("image_path"))
    return Path(path).read_bytes() if path else None


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return im.size


def _corpus(spec: str | None) -> list:
    """Cases of the retrieval corpus; [] (an empty index) if none is given or readable."""
    if not spec:
        return []
    try:
        from nova_mlflow.data import load_dataset

        return load_dataset(spec, check_images=False).cases
    except Exception as exc:  # noqa: BLE001 (a missing corpus degrades the baseline, not loading)
        log.warning("corpus %r not loadable (%s): the baseline's retrieval index is empty", spec, exc)
        return []


def _run(coro: Coroutine) -> Any:
    """asyncio.run, also from inside a running event loop (notebooks, async servers)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


mlflow.models.set_model(NovaConfigModel())

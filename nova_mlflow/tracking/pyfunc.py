"""A registered NOVA configuration as an MLflow pyfunc (models from code; logged by gate).

The file itself is the model: `mlflow.pyfunc.log_model(python_model=<this file>,
model_config=...)` copies it into the model, and loading runs it. It holds no weights:
the configuration (model name, provider, box frame, prompt texts per task, generation
settings) is the model_config, and answers come from nova_mlflow's provider layer, so the
serving environment needs nova-mlflow installed (and the provider's API key, if any).

model_config keys: model, provider, frame, tasks, prompts {task: {name, version, sha256,
text}}, settings {temperature, max_tokens, seed}, base_url, api_key_env, data, images,
corpus, image_roots, concurrency.
`corpus` only matters for model "baseline", whose diagnosis retrieves from other cases: a
dataset spec ("demo", a directory); if absent or unreadable the index is empty and the
baseline answers diagnosis with an empty text. Override at load time with
`mlflow.pyfunc.load_model(uri, model_config={"corpus": PATH})`.

Images: a served model reads files on its caller's behalf and sends their bytes to the model
vendor, so `image_path` is read only under the directories in `image_roots` (default: the
directory of the run's dataset, `data`, as it resolves where the model is loaded, and the
run's `--images` directory, `images`, if it had one). A path outside them (after following
links; relative paths are taken from the roots) is refused with an error in that row and
nothing is sent. Load with `model_config={"image_roots": [DIR, ...]}` to allow others, or
send `image_png`.

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
        self.image_roots = image_roots(self.config)
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
                                             base_url=self.config.get("base_url"),
                                             api_key_env=self.config.get("api_key_env"))
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
        png = _image(row, self.image_roots)
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


class ImageRefused(ValueError):
    """An image_path outside the roots the model was loaded with: never read, never sent."""


def image_roots(config: dict[str, Any]) -> list[Path]:
    """The directories image_path may point into (resolved): `image_roots`, else the
    directory of the run's dataset (`data`, else `corpus`) and the run's `images` directory
    (`--images`); none if neither resolves."""
    given = config.get("image_roots")
    if given:
        roots = [Path(str(p)).expanduser() for p in ([given] if isinstance(given, str) else given)]
    else:
        from nova_mlflow.data import dataset_root

        spec = config.get("data") or config.get("corpus")
        root = dataset_root(spec) if spec else None
        images = Path(str(config["images"])).expanduser() if config.get("images") else None
        roots = [r for r in (root, images) if r is not None]
    return [r.resolve() for r in roots]


def read_image(path: str, roots: list[Path]) -> bytes:
    """The bytes of an image file under one of `roots`; anything else is refused."""
    p = Path(path).expanduser()
    inside = False
    for candidate in ([p] if p.is_absolute() else [r / p for r in roots]):
        real = candidate.resolve()  # links followed: a link out of a root is outside it
        if any(real.is_relative_to(r) for r in roots):
            inside = True
            if real.is_file():
                return real.read_bytes()
    if inside:
        raise ImageRefused(f"image_path {path!r}: no such file under the image roots")
    allowed = ", ".join(str(r) for r in roots) or "none configured"
    raise ImageRefused(f"image_path {path!r} is outside the image roots this model was loaded "
                       f"with ({allowed}); send the PNG as image_png, or load the model with "
                       "model_config={'image_roots': [DIR, ...]}")


def _image(row: dict, roots: list[Path]) -> bytes | None:
    png = row.get("image_png")
    if isinstance(png, (bytes, bytearray)):
        return bytes(png)
    if isinstance(png, str) and png:
        return base64.b64decode(png)
    path = _text(row.get("image_path"))
    return read_image(path, roots) if path else None


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

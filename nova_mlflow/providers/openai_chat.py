"""OpenAI models (GPT-4o, ...) through the official openai SDK's chat completions route.

The SDK's own retries are switched off (max_retries=0): the runner retries every provider
the same way, honouring Retry-After. The image goes as a PNG data URL, exactly the bytes of
the dataset file.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from nova_mlflow.errors import InputError
from nova_mlflow.providers import register
from nova_mlflow.providers.base import Request, Response
from nova_mlflow.secrets import api_key


def _client(base_url: str | None, key: str, timeout: float):
    try:
        from openai import AsyncOpenAI
    except ImportError:
        raise InputError("the openai provider needs the openai SDK: pip install openai") from None
    return AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)


def chat_messages(request: Request) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    if request.image_png is not None:
        b64 = base64.b64encode(request.image_png).decode()
        content.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}})
    return [{"role": "user", "content": content}]


class OpenAIChatProvider:
    name = "openai"
    key_required = True
    max_tokens_field = "max_completion_tokens"  # OpenAI's current name; compatible servers differ

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0,
                 **_: object) -> None:
        self.model = model
        self.api_model = model.split(":", 1)[1] if ":" in model else model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key(self.name, required=self.key_required) or "EMPTY"
        self._client = _client(self.base_url, key, timeout)

    async def generate(self, request: Request) -> Response:
        s = request.settings
        kwargs: dict[str, Any] = {"temperature": s.temperature, self.max_tokens_field: s.max_tokens}
        if s.seed is not None:
            kwargs["seed"] = s.seed
        resp = await self._client.chat.completions.create(
            model=self.api_model, messages=chat_messages(request), **kwargs)
        choice = resp.choices[0]
        msg = choice.message
        refusal = getattr(msg, "refusal", None)
        refused = bool(refusal) or choice.finish_reason == "content_filter"
        usage = resp.usage
        return Response(
            text=msg.content or refusal or "",
            refused=refused,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
        )


@register("openai")
def _factory(model: str, base_url: str | None = None, timeout: float = 120.0,
             **_: object) -> OpenAIChatProvider:
    return OpenAIChatProvider(model, base_url=base_url, timeout=timeout)

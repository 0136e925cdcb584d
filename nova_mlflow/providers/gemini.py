"""Gemini models (gemini-2.0-flash, 2.5, ...) through the official google-genai SDK.

google-genai does not retry unless told to; we tell it explicitly not to (attempts=1) and
let the runner retry, as for every provider. Base URL from --base-url or
GOOGLE_GEMINI_BASE_URL; key from GEMINI_API_KEY or GOOGLE_API_KEY (or --api-key-env).
"""

from __future__ import annotations

import os
from typing import Any

from nova_mlflow.errors import InputError
from nova_mlflow.providers import register
from nova_mlflow.providers.base import Request, Response
from nova_mlflow.secrets import api_key, endpoint_id

_REFUSAL_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                    "IMAGE_SAFETY"}


class GeminiProvider:
    name = "gemini"
    default_endpoint = "https://generativelanguage.googleapis.com"  # the SDK's default base URL

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0,
                 api_key_env: str | None = None, **_: object) -> None:
        try:
            from google import genai
            from google.genai import types
        except ImportError:
            raise InputError("the gemini provider needs google-genai: pip install google-genai") from None
        self._types = types
        self.model = model
        self.api_model = model.split(":", 1)[1] if model.startswith("gemini:") else model
        self.base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None
        options = types.HttpOptions(
            base_url=self.base_url,
            timeout=int(timeout * 1000),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(api_key=api_key(self.name, env_name=api_key_env),
                                    http_options=options)

    @property
    def endpoint(self) -> str | None:
        """Where requests go (no credentials): part of every response-cache key."""
        return endpoint_id(self.base_url) or self.default_endpoint

    async def generate(self, request: Request) -> Response:
        t = self._types
        parts: list[Any] = []
        if request.image_png is not None:
            parts.append(t.Part.from_bytes(data=request.image_png, mime_type="image/png"))
        parts.append(t.Part.from_text(text=request.prompt))
        s = request.settings
        config = t.GenerateContentConfig(temperature=s.temperature, max_output_tokens=s.max_tokens,
                                         seed=s.seed)
        resp = await self._client.aio.models.generate_content(
            model=self.api_model, contents=[t.Content(role="user", parts=parts)], config=config)
        refused = False
        feedback = getattr(resp, "prompt_feedback", None)
        if feedback is not None and getattr(feedback, "block_reason", None):
            refused = True
        cands = resp.candidates or []
        if cands and cands[0].finish_reason is not None:
            reason = getattr(cands[0].finish_reason, "value", str(cands[0].finish_reason))
            refused = refused or str(reason).upper() in _REFUSAL_REASONS
        try:
            text = resp.text or ""
        except (ValueError, AttributeError):
            text = ""
        usage = resp.usage_metadata
        return Response(text=text, refused=refused,
                        input_tokens=getattr(usage, "prompt_token_count", None),
                        output_tokens=getattr(usage, "candidates_token_count", None))


@register("gemini")
def _factory(model: str, base_url: str | None = None, timeout: float = 120.0,
             api_key_env: str | None = None, **_: object) -> GeminiProvider:
    return GeminiProvider(model, base_url=base_url, timeout=timeout, api_key_env=api_key_env)

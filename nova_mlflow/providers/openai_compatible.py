"""Any server speaking the OpenAI chat route: vLLM or SGLang serving Qwen2.5-VL, Ollama, ...

Selected as `--model openai-compatible:<served-model-name>` with `--base-url` (or
OPENAI_BASE_URL). Self-hosted servers often need no key: OPENAI_API_KEY is sent if set,
else the placeholder "EMPTY" that vLLM expects.
"""

from __future__ import annotations

import os

from nova_mlflow.errors import InputError
from nova_mlflow.providers import register
from nova_mlflow.providers.openai_chat import OpenAIChatProvider


class OpenAICompatibleProvider(OpenAIChatProvider):
    name = "openai-compatible"
    key_required = False
    max_tokens_field = "max_tokens"  # what vLLM, SGLang and Ollama all accept


@register("openai-compatible")
def _factory(model: str, base_url: str | None = None, timeout: float = 120.0,
             **_: object) -> OpenAICompatibleProvider:
    if not (base_url or os.environ.get("OPENAI_BASE_URL")):
        raise InputError(f"--model {model!r}: an OpenAI-compatible server needs --base-url "
                         "(or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
    return OpenAICompatibleProvider(model, base_url=base_url, timeout=timeout)

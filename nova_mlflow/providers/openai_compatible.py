"""Any server speaking the OpenAI chat route: vLLM or SGLang serving Qwen2.5-VL, Ollama, ...

Selected as `--model openai-compatible:<served-model-name>` with `--base-url` (or
OPENAI_BASE_URL). The server is whatever the URL names, so it never gets a vendor's key:
the key is OPENAI_COMPATIBLE_API_KEY (or the variable named by --api-key-env), and when that
is unset no Authorization header is sent at all (vLLM and Ollama need none). OPENAI_API_KEY
and the OpenAI account headers (OPENAI_ORG_ID, OPENAI_PROJECT_ID) are never sent.
"""

from __future__ import annotations

import os

from nova_mlflow.errors import InputError
from nova_mlflow.providers import register
from nova_mlflow.providers.openai_chat import OpenAIChatProvider


class OpenAICompatibleProvider(OpenAIChatProvider):
    name = "openai-compatible"
    key_required = False
    account_headers = False
    default_endpoint = None  # every server is named explicitly: no default to fall back on
    max_tokens_field = "max_tokens"  # what vLLM, SGLang and Ollama all accept


@register("openai-compatible")
def _factory(model: str, base_url: str | None = None, timeout: float = 120.0,
             api_key_env: str | None = None, **_: object) -> OpenAICompatibleProvider:
    if not (base_url or os.environ.get("OPENAI_BASE_URL")):
        raise InputError(f"--model {model!r}: an OpenAI-compatible server needs --base-url "
                         "(or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
    return OpenAICompatibleProvider(model, base_url=base_url, timeout=timeout,
                                    api_key_env=api_key_env)

"""OpenAI models (GPT-4o, ...) through the official openai SDK's chat completions route.

The SDK's own retries are switched off (max_retries=0): the runner retries every provider
the same way, honouring Retry-After. The image goes as a PNG data URL, exactly the bytes of
the dataset file.

Transport: the SDK's documented aiohttp transport (`openai.DefaultAioHttpClient`, the
`openai[aiohttp]` extra) instead of its default httpx2 one. The calls still go through
`chat.completions.create`; only the HTTP layer differs, and the SDK maps aiohttp's errors to
its usual exception types, so the runner classifies them as before. In paired runs at
concurrency 32-64 with ~175 kB image requests it used ~18% less client CPU per request
(median), which shows at high concurrency or on a busy machine (BENCHMARKS.md, throughput).
NOVA_OPENAI_TRANSPORT=httpx goes back to the SDK's default; without aiohttp installed the
default is used too.

One SDK client per event loop: an HTTP client's pooled connections belong to the loop that
opened them, and the runner and the judge each run their calls in their own `asyncio.run`.
A loop's client is closed when that loop shuts down (see `_close_with_loop`).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncGenerator
from typing import Any

from nova_mlflow.errors import InputError
from nova_mlflow.providers import register
from nova_mlflow.providers.base import Request, Response
from nova_mlflow.secrets import api_key, endpoint_id

TRANSPORT_ENV = "NOVA_OPENAI_TRANSPORT"  # "aiohttp" (default) or "httpx" (the SDK's default)
NO_KEY = "no-key-sent"  # the client's key when there is none: Authorization is omitted


_MISSING_SDK = "the openai provider needs the openai SDK: pip install openai"


def _openai():
    try:
        import openai
    except ImportError:
        raise InputError(_MISSING_SDK) from None
    return openai


def _check_sdk() -> None:
    """Fail before any work if the SDK is not installed, without importing it (~0.5 s: a
    re-run answered from the response cache never needs it)."""
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        raise InputError(_MISSING_SDK)


def transport() -> str:
    """The HTTP transport new clients use: 'aiohttp' when asked for (default) and installed."""
    if os.environ.get(TRANSPORT_ENV, "aiohttp").strip().lower() == "httpx":
        return "httpx"
    openai = _openai()
    make = getattr(openai, "DefaultAioHttpClient", None)  # openai >= 1.89
    if make is None:
        return "httpx"
    try:
        import aiohttp  # noqa: F401  (the openai[aiohttp] extra)
    except ImportError:
        return "httpx"
    return "aiohttp"


def _client(base_url: str | None, key: str | None, timeout: float, kind: str | None = None,
            account_headers: bool = True):
    """An SDK client. `key` None sends no key: the caller omits Authorization on every
    request, and the client gets a placeholder that is never sent, so the SDK neither falls
    back to OPENAI_API_KEY nor refuses to start for want of credentials. Without
    `account_headers` the OpenAI-Organization / OpenAI-Project headers the SDK would fill
    from OPENAI_ORG_ID / OPENAI_PROJECT_ID are left out (they belong to an OpenAI account)."""
    openai = _openai()
    http_client = None  # the SDK's default (httpx2)
    if (kind or transport()) == "aiohttp":
        http_client = openai.DefaultAioHttpClient(timeout=timeout)
    headers = None if account_headers else {"OpenAI-Organization": openai.Omit(),
                                            "OpenAI-Project": openai.Omit()}
    return openai.AsyncOpenAI(api_key=key or NO_KEY, base_url=base_url, max_retries=0,
                              timeout=timeout, http_client=http_client, default_headers=headers)


async def _close_with_loop(client: Any) -> AsyncGenerator[None, None]:
    """Parked at its `yield` for the life of one event loop, then closes `client`.

    asyncio.run (and any loop that calls `loop.shutdown_asyncgens()`) closes every async
    generator still open before the loop closes, so the client's connections are shut inside
    their own loop -- no aiohttp "Unclosed client session" at exit -- whoever ran the loop.
    """
    try:
        yield
    finally:
        await client.close()


def _as_connection_error(exc: Exception) -> Exception:
    """With the aiohttp transport the SDK reports a refused or dropped connection as
    APITimeoutError (its adapter maps every aiohttp connection error to httpx2.ConnectTimeout);
    say APIConnectionError, as the httpx2 transport does, unless it was a timeout. Both are
    retried alike (base.classify); only the text in the answer record differs."""
    cause = exc.__cause__
    root = cause.__cause__ if cause is not None else None
    if type(exc).__name__ != "APITimeoutError" or root is None or isinstance(root, TimeoutError):
        return exc
    try:
        import aiohttp
        import openai
    except ImportError:
        return exc
    if not isinstance(root, aiohttp.ClientConnectionError):
        return exc
    return openai.APIConnectionError(message=f"Connection error: {root}", request=exc.request)


def chat_messages(request: Request) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    if request.image_png is not None:
        b64 = base64.b64encode(request.image_png).decode()
        content.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}})
    return [{"role": "user", "content": content}]


class OpenAIChatProvider:
    """OpenAI's own API: OPENAI_API_KEY (or --api-key-env), and OPENAI_BASE_URL as the SDK."""

    name = "openai"
    key_required = True
    account_headers = True  # OpenAI-Organization / -Project from the environment, as the SDK
    default_endpoint: str | None = "https://api.openai.com/v1"  # the SDK's default base URL
    max_tokens_field = "max_completion_tokens"  # OpenAI's current name; compatible servers differ

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0,
                 api_key_env: str | None = None, **_: object) -> None:
        self.model = model
        self.api_model = model.split(":", 1)[1] if ":" in model else model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._key = api_key(self.name, required=self.key_required, env_name=api_key_env)
        self._timeout = timeout
        _check_sdk()
        self._transport: str | None = None  # decided (importing the SDK) on the first call
        # event loop -> (client, the generator that closes it with the loop)
        self._clients: dict[asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None]]] = {}

    @property
    def transport(self) -> str:
        """The HTTP transport of this provider's clients (`transport()`, decided once)."""
        if self._transport is None:
            self._transport = transport()
        return self._transport

    async def client(self) -> Any:
        """The SDK client of the running event loop (made on the loop's first call)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        for old in [lp for lp in list(self._clients) if lp.is_closed()]:
            self._clients.pop(old, None)  # closed with their loop already
        client = _client(self.base_url, self._key, self._timeout, self.transport,
                         self.account_headers)
        closer = _close_with_loop(client)
        self._clients[loop] = (client, closer)  # before any await: concurrent first calls share it
        await closer.__anext__()
        return client

    @property
    def endpoint(self) -> str | None:
        """Where requests go (no credentials): part of every response-cache key."""
        return endpoint_id(self.base_url) or self.default_endpoint

    async def aclose(self) -> None:
        """Close the running loop's client now (else it is closed when its loop shuts down)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    async def generate(self, request: Request) -> Response:
        s = request.settings
        kwargs: dict[str, Any] = {"temperature": s.temperature, self.max_tokens_field: s.max_tokens}
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if self._key is None:  # no key: no Authorization header at all
            kwargs["extra_headers"] = {"Authorization": _openai().Omit()}
        client = await self.client()
        try:
            resp = await client.chat.completions.create(
                model=self.api_model, messages=chat_messages(request), **kwargs)
        except Exception as exc:
            mapped = _as_connection_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
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
             api_key_env: str | None = None, **_: object) -> OpenAIChatProvider:
    return OpenAIChatProvider(model, base_url=base_url, timeout=timeout, api_key_env=api_key_env)

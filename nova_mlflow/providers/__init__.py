"""Provider registry: `--model NAME` -> a Provider instance.

`baseline` is the offline default; `openai:`, `gemini:` and `openai-compatible:` prefixes
(and known model names) select the network providers as they are added.
"""

from __future__ import annotations

from collections.abc import Callable

from nova_mlflow.errors import InputError
from nova_mlflow.providers.base import GenerationSettings, Provider, Request, Response

Factory = Callable[..., Provider]
_REGISTRY: dict[str, Factory] = {}


def register(kind: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        _REGISTRY[kind] = factory
        return factory

    return deco


def provider_kind(model: str) -> str:
    """Which provider serves a model name ("kind:model" or a bare known name)."""
    if ":" in model:
        return model.split(":", 1)[0]
    if model == "baseline":
        return "baseline"
    if model.startswith(("gpt-", "o1", "o3", "o4")):
        return "openai"
    if model.startswith("gemini"):
        return "gemini"
    return "unknown"


def create_provider(model: str, **context) -> Provider:
    _load_builtins()
    kind = provider_kind(model)
    if kind not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise InputError(f"--model {model!r}: no provider for it (available: {known})")
    return _REGISTRY[kind](model=model, **context)


def _load_builtins() -> None:
    """Import the provider modules (each registers itself); SDKs load only when used."""
    from nova_mlflow.providers import gemini, openai_chat, openai_compatible, replay  # noqa: F401
    from nova_mlflow.providers.baseline import provider  # noqa: F401


__all__ = ["GenerationSettings", "Provider", "Request", "Response", "create_provider",
           "provider_kind", "register"]

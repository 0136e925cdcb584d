"""API keys: read only from the environment, never written anywhere, scrubbed from text.

SDK error messages can echo part of a key ("Incorrect API key provided: sk-ab***yz"), so every
error string that may reach an answer file, a log or MLflow goes through `redact` first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from nova_mlflow.errors import InputError

KEY_VARS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "openai-compatible": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
ALL_KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY")
_KEY_PATTERNS = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,}|[Bb]earer\s+\S+)")


def api_key(kind: str, *, required: bool = True) -> str | None:
    """The key for a provider kind; a missing required key names the variable to set."""
    names = KEY_VARS.get(kind, ())
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    if required and names:
        raise InputError(f"provider '{kind}' needs an API key: set {' or '.join(names)} in the "
                         "environment (keys are never read from flags or files)")
    return None


def redact(text: str | None) -> str | None:
    """Remove every key value in the environment and anything shaped like a key."""
    if not text:
        return text
    for name in ALL_KEY_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return _KEY_PATTERNS.sub("[redacted]", text)


def safe_url(url: str | None) -> str | None:
    """A base URL without user:password@ or query string, fit to be logged as a param."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

"""API keys: read only from the environment, never written anywhere, scrubbed from text.

Which variable serves which provider: `openai` reads OPENAI_API_KEY and `gemini`
GEMINI_API_KEY / GOOGLE_API_KEY, as their SDKs do. `openai-compatible` talks to whatever
server --base-url names, so it never gets a vendor's key: it reads OPENAI_COMPATIBLE_API_KEY
and sends no key at all when that is unset (vLLM and Ollama need none). `--api-key-env NAME`
names another variable instead (a required key: unset is an error).

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
    "openai-compatible": ("OPENAI_COMPATIBLE_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
#: Keys of a vendor's account: they go to that vendor's SDK only, never to a --base-url server.
VENDOR_KEY_VARS = ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                   "ANTHROPIC_API_KEY")
ALL_KEY_VARS = (*VENDOR_KEY_VARS, "OPENAI_COMPATIBLE_API_KEY")
_NAMED_KEY_VARS: set[str] = set()  # variables named by --api-key-env: scrubbed by redact too
_KEY_PATTERNS = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,}|[Bb]earer\s+\S+)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_key_env(kind: str, name: str) -> None:
    """`--api-key-env NAME` must name a variable, for a provider that takes a key; an
    openai-compatible server never gets a vendor's key, even when asked by name."""
    if not _ENV_NAME.match(name):
        raise InputError(f"--api-key-env {name!r}: not an environment variable name")
    if kind not in KEY_VARS:
        raise InputError(f"--api-key-env {name}: provider '{kind}' takes no API key "
                         f"(it applies to {', '.join(sorted(KEY_VARS))})")
    if kind == "openai-compatible" and name in VENDOR_KEY_VARS:
        raise InputError(f"--api-key-env {name}: an openai-compatible server never gets a "
                         f"vendor's key; put the key this server expects in "
                         f"OPENAI_COMPATIBLE_API_KEY or in a variable of its own")


def api_key(kind: str, *, required: bool = True, env_name: str | None = None) -> str | None:
    """The key for a provider kind; a missing required key names the variable to set.

    `env_name` (--api-key-env) replaces the provider's own variables and is always required:
    the user asked for that key by name.
    """
    if env_name:
        check_key_env(kind, env_name)
        _NAMED_KEY_VARS.add(env_name)
        names: tuple[str, ...] = (env_name,)
        required = True
    else:
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
    for name in (*ALL_KEY_VARS, *sorted(_NAMED_KEY_VARS)):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return _KEY_PATTERNS.sub("[redacted]", text)


def endpoint_id(url: str | None) -> str | None:
    """How an endpoint is named in cache keys and stats: its URL without credentials, query
    or trailing slash (so ".../v1" and ".../v1/" are one endpoint)."""
    clean = safe_url(url)
    return clean.rstrip("/") if clean else None


def safe_url(url: str | None) -> str | None:
    """A base URL without user:password@ or query string, fit to be logged as a param."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

"""Estimated cost in USD from token counts and a price table (USD per million tokens).

The built-in table holds the vendors' list prices for standard (non-batch, text and image
input) use, as published on the pages in PRICES_SOURCES on the date PRICES_AS_OF; prices
change, so override or extend it with `--prices FILE.json`
({"model-prefix": {"input": X, "output": Y}, ...}) or $NOVA_MLFLOW_PRICES.

A model without a known price has an unknown cost, never 0: no cost metric is logged for it
(absent, not 0.0), a warning names the model and --prices, and the summary says "cost
unknown". Models served through `openai-compatible` (vLLM, Ollama, a proxy) are unknown
unless the --prices file names them ("openai-compatible:NAME" or "NAME"): the built-in
vendor prices never apply to them, even when the served name is a vendor's. The offline
`baseline` runs here and costs 0.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from nova_mlflow.errors import InputError

log = logging.getLogger("nova_mlflow")

PRICES_AS_OF = "2025-06"
PRICES_SOURCES = {
    "openai": "https://openai.com/api/pricing/",
    "gemini": "https://ai.google.dev/gemini-api/docs/pricing",
}
PRICES_SOURCE = "; ".join(f"{vendor}: {url}" for vendor, url in PRICES_SOURCES.items())
#: USD per million tokens, list prices on PRICES_AS_OF (gemini-2.5-pro: prompts up to 200k
#: tokens). Keys are model-name prefixes; the longest matching prefix wins.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gemini-2.0-flash-lite": {"input": 0.075, "output": 0.30},
    "gemini-2.0-flash": {"input": 0.10, "output": 0.40},
    "gemini-2.5-flash": {"input": 0.30, "output": 2.50},
    "gemini-2.5-pro": {"input": 1.25, "output": 10.00},
}
FREE = ("baseline",)  # offline models that run on this machine
VENDOR_KINDS = ("openai", "gemini")  # providers whose models the built-in table prices
UNKNOWN = "cost unknown"


@dataclass(frozen=True)
class PriceTable:
    """Prices by model-name prefix; `custom` names the entries the user gave (--prices)."""

    prices: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    custom: frozenset[str] = frozenset()
    as_of: str = PRICES_AS_OF
    source: str = PRICES_SOURCE


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The default table updated by a JSON file (flag first, then $NOVA_MLFLOW_PRICES)."""
    source = path or os.environ.get("NOVA_MLFLOW_PRICES")
    table = dict(DEFAULT_PRICES)
    if not source:
        return PriceTable(table)
    try:
        extra = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read price table ({type(exc).__name__})", file=source) from None
    if not isinstance(extra, dict):
        raise InputError('expected {"model": {"input": X, "output": Y}, ...} (USD per million '
                         "tokens)", file=source)
    for model, p in extra.items():
        if not (isinstance(p, dict) and {"input", "output"} <= p.keys()):
            raise InputError("expected {\"input\": X, \"output\": Y} (USD per million tokens)",
                             file=source, field=model)
        try:
            table[model.lower()] = {"input": float(p["input"]), "output": float(p["output"])}
        except (TypeError, ValueError):
            raise InputError("input and output must be numbers (USD per million tokens)",
                             file=source, field=model) from None
    return PriceTable(table, frozenset(k.lower() for k in extra), "custom", str(source))


def _longest_prefix(name: str, keys: list[str]) -> str | None:
    matches = [k for k in keys if name.startswith(k)]
    return max(matches, key=len) if matches else None


def price_for(model: str, table: PriceTable) -> dict[str, float] | None:
    """The price of a model, or None when it is not known (see the module docstring)."""
    full = model.lower()
    kind, _, bare = full.partition(":") if ":" in full else ("", "", full)
    if full in FREE:
        return {"input": 0.0, "output": 0.0}
    if kind and kind not in VENDOR_KINDS:  # openai-compatible, replay, ...: the user's only
        custom = sorted(table.custom)
        key = _longest_prefix(full, custom) or _longest_prefix(bare, custom)
    else:
        key = _longest_prefix(bare, list(table.prices))
    return table.prices[key] if key else None


def cost_usd(model: str, input_tokens: int, output_tokens: int,
             table: PriceTable) -> float | None:
    """USD for these tokens, or None when the model's price is unknown (never a made-up 0)."""
    p = price_for(model, table)
    if p is None:
        return None
    return (input_tokens * p["input"] + output_tokens * p["output"]) / 1_000_000


def warn_if_unknown(model: str, table: PriceTable, role: str = "model") -> bool:
    """Log why no cost will be logged for `model`; True when its price is known."""
    if price_for(model, table) is not None:
        return True
    log.warning("no price known for %s %s: its cost is not logged (cost unknown); give one "
                'with --prices FILE.json, e.g. {"%s": {"input": X, "output": Y}} in USD per '
                "million tokens", role, model, model)
    return False

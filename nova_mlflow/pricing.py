"""Estimated cost in USD from token counts and a price table (USD per million tokens).

The built-in table holds list prices as published by the vendors for standard (non-batch)
use, as of the table's date; prices change, so override it with `--prices FILE.json`
({"model-prefix": {"input": X, "output": Y}, ...}) or $NOVA_MLFLOW_PRICES. Models served by
yourself (openai-compatible, baseline, replay) cost 0 here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nova_mlflow.errors import InputError

PRICES_AS_OF = "2025-06"
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


def load_prices(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The default table updated by a JSON file (flag first, then $NOVA_MLFLOW_PRICES)."""
    source = path or os.environ.get("NOVA_MLFLOW_PRICES")
    table = dict(DEFAULT_PRICES)
    if source:
        try:
            extra = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read price table ({type(exc).__name__})", file=source) from None
        for model, p in extra.items():
            if not (isinstance(p, dict) and {"input", "output"} <= p.keys()):
                raise InputError("expected {\"input\": X, \"output\": Y} (USD per million tokens)",
                                 file=source, field=model)
            table[model] = {"input": float(p["input"]), "output": float(p["output"])}
    return table


def price_for(model: str, table: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """Longest matching prefix of the model name (after any 'provider:' prefix)."""
    name = model.split(":", 1)[-1].lower()
    matches = [k for k in table if name.startswith(k)]
    return table[max(matches, key=len)] if matches else None


def cost_usd(model: str, input_tokens: int, output_tokens: int,
             table: dict[str, dict[str, float]]) -> float:
    if model.startswith(("openai-compatible:", "replay:", "baseline")):
        return 0.0
    p = price_for(model, table)
    if p is None:
        return 0.0
    return (input_tokens * p["input"] + output_tokens * p["output"]) / 1_000_000

"""Tokens, cost and latency of a task's answers (aggregates only, logged as metrics).

`cost_usd` is what this run paid (answers from the cache cost nothing again);
`cost_usd_uncached` is what the same answers cost from scratch. Latency percentiles cover
the calls actually made this run (cached answers would drag them to zero).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nova_mlflow.pricing import cost_usd
from nova_mlflow.schemas import Answer


def usage_metrics(answers: Iterable[Answer], model: str,
                  prices: dict[str, dict[str, float]]) -> dict[str, float]:
    answers = list(answers)
    fresh = [a for a in answers if not a.cached]
    tin = sum(a.input_tokens or 0 for a in answers)
    tout = sum(a.output_tokens or 0 for a in answers)
    fin = sum(a.input_tokens or 0 for a in fresh)
    fout = sum(a.output_tokens or 0 for a in fresh)
    lat = [a.latency_s for a in fresh if a.latency_s is not None and a.status != "api_error"]
    return {
        "input_tokens": float(tin),
        "output_tokens": float(tout),
        "cost_usd": cost_usd(model, fin, fout, prices),
        "cost_usd_uncached": cost_usd(model, tin, tout, prices),
        "cached": float(sum(1 for a in answers if a.cached)),
        "retries": float(sum(max(0, (a.attempts or 1) - 1) for a in fresh)),
        "latency_p50_s": float(np.percentile(lat, 50)) if lat else 0.0,
        "latency_p95_s": float(np.percentile(lat, 95)) if lat else 0.0,
    }

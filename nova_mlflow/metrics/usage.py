"""Tokens, cost and latency of a task's answers (aggregates only, logged as metrics).

`cost_usd` is what this run paid (answers from the cache cost nothing again);
`cost_usd_uncached` is what the same answers cost from scratch. Both are left out when the
model's price is unknown (pricing.py): an unknown cost is never reported as 0. Latency
percentiles cover the calls actually made this run (cached answers would drag them to zero).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nova_mlflow.pricing import PriceTable, cost_usd
from nova_mlflow.schemas import Answer


def usage_metrics(answers: Iterable[Answer], model: str, prices: PriceTable) -> dict[str, float]:
    answers = list(answers)
    fresh = [a for a in answers if not a.cached]
    tin = sum(a.input_tokens or 0 for a in answers)
    tout = sum(a.output_tokens or 0 for a in answers)
    fin = sum(a.input_tokens or 0 for a in fresh)
    fout = sum(a.output_tokens or 0 for a in fresh)
    lat = [a.latency_s for a in fresh if a.latency_s is not None and a.status != "api_error"]
    paid, uncached = cost_usd(model, fin, fout, prices), cost_usd(model, tin, tout, prices)
    costs = {} if paid is None or uncached is None else {"cost_usd": paid,
                                                         "cost_usd_uncached": uncached}
    return {
        "input_tokens": float(tin),
        "output_tokens": float(tout),
        **costs,
        "cached": float(sum(1 for a in answers if a.cached)),
        "retries": float(sum(max(0, (a.attempts or 1) - 1) for a in fresh)),
        "latency_p50_s": float(np.percentile(lat, 50)) if lat else 0.0,
        "latency_p95_s": float(np.percentile(lat, 95)) if lat else 0.0,
    }

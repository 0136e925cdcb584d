"""The LLM judge for Task 3: a provider call per (prediction, truth) pair, cached.

The NOVA paper matched free-text diagnoses with GPT-4o as a judge (synonyms accepted,
differences in specificity tolerated); the judge here is any provider model with the
versioned prompt prompts/judge/<version>.md. Verdicts are cached in sqlite by (judge model,
its endpoint, judge prompt version and text hash, prediction, truth), so re-scoring the same
answers never pays twice; pairs equal after normalisation are matched without a call.
Judge tokens and cost are counted apart from the model's. A judge answer that cannot be
read, or a call that fails after retries, is a "no match" verdict whose reason says so,
counted and never cached.

Tracing: with a `tracer` set (tracking_traces.Tracer, given by the run unless --no-traces),
every judge call is an MLflow trace of the run (task `diagnosis-judge`, tag nova.role=judge):
the cases that produced the pair, the prompt sent, the raw answer and the parsed verdict,
tokens, latency and failed attempts. Shortcuts and cache hits make no call, so no trace.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from nova_mlflow.metrics.matching import Verdict
from nova_mlflow.metrics.diagnosis import normalize
from nova_mlflow.paths import cache_dir
from nova_mlflow.pricing import PriceTable, cost_usd, load_prices
from nova_mlflow.prompts import Prompt, load_prompt
from nova_mlflow.providers import create_provider
from nova_mlflow.providers.base import Request, Response
from nova_mlflow.calls.runner import CallSession, Outcome, execute, run_sync
from nova_mlflow.calls.store import CallStore
from nova_mlflow.config import CallOptions, RetryPolicy
from nova_mlflow.schemas import Case, GenerationSettings, Task

DEFAULT_JUDGE = "gpt-4o"
_VERDICT = re.compile(r'"?(?:verdict|match)"?\s*[:=]\s*"?(yes|no|true|false|match|no match)\b', re.I)


def read_verdict(text: str) -> tuple[bool, str] | None:
    """(match, reason) from the judge's JSON, or from a bare yes/no; None if unreadable."""
    s = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", s, re.S)
    if fenced:
        s = fenced.group(1).strip()
    start, end = s.find("{"), s.rfind("}")
    if start >= 0 and end > start:
        try:
            obj = json.loads(s[start:end + 1])
            v = obj.get("verdict", obj.get("match"))
            reason = str(obj.get("reason", "")).strip()
            if isinstance(v, bool):
                return v, reason
            if isinstance(v, str) and v.strip().lower() in {"yes", "no", "true", "false"}:
                return v.strip().lower() in {"yes", "true"}, reason
        except (json.JSONDecodeError, AttributeError):
            pass
    m = _VERDICT.search(s)
    if m:
        return m.group(1).lower() in {"yes", "true", "match"}, ""
    first = s.split(None, 1)[0].strip(".,:;!").lower() if s else ""
    if first in {"yes", "no"}:
        return first == "yes", s[len(first):].strip(" .,:;-")
    return None


@dataclass
class JudgeUsage:
    calls: int = 0
    cache_hits: int = 0
    shortcuts: int = 0  # equal after normalisation: no call needed
    input_tokens: int = 0
    output_tokens: int = 0
    unreadable: int = 0
    api_errors: int = 0


class JudgeMatcher:
    """A Matcher whose verdicts come from an LLM (through the provider layer).

    Scoring passes the case of each pair (`match_many(pairs, cases=...)`, as announced by
    `takes_cases`), so a traced judge call names the cases it was asked for.
    """

    takes_cases = True

    def __init__(self, model: str = DEFAULT_JUDGE, prompt_version: str = "v1", *,
                 base_url: str | None = None, concurrency: int = 8,
                 policy: RetryPolicy | None = None, use_cache: bool = True) -> None:
        self.model = model
        self.name = f"judge:{model}"
        self.prompt: Prompt = load_prompt("judge", prompt_version)
        self.policy = policy or RetryPolicy()
        self.concurrency = concurrency
        self.provider = create_provider(model, base_url=base_url, timeout=self.policy.timeout)
        self.cache = CallStore.in_dir(cache_dir()) if use_cache else None
        self.session = CallSession(self.provider, CallOptions(concurrency=concurrency,
                                                              retry=self.policy, progress=False))
        self.usage = JudgeUsage()
        self.settings = GenerationSettings(temperature=0.0, max_tokens=200, seed=0)
        self.tracer: Any = None  # tracking_traces.Tracer: one trace per judge call when set

    @property
    def endpoint(self) -> str | None:
        """Where the judge's calls go (no credentials): part of every verdict key."""
        return getattr(self.provider, "endpoint", None)

    def key(self, prediction: str, truth: str) -> str:
        """Verdict key: judge model and endpoint, prompt version and hash, the pair."""
        return self._key(prediction, truth, [self.model, self.endpoint])

    def legacy_key(self, prediction: str, truth: str) -> str | None:
        """The key verdicts had before endpoints were in it; it is used only when the judge
        calls its provider's default endpoint (calls.store explains why)."""
        if self.endpoint != getattr(self.provider, "default_endpoint", None):
            return None
        return self._key(prediction, truth, [self.model])

    def _key(self, prediction: str, truth: str, who: list[str | None]) -> str:
        payload = [*who, self.prompt.version, self.prompt.sha256,
                   " ".join(prediction.lower().split()), " ".join(truth.lower().split())]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    def match(self, prediction: str, truth: str) -> Verdict:
        return self.match_many([(prediction, truth)])[0]

    def match_many(self, pairs: Sequence[tuple[str, str]],
                   cases: Sequence[Case] | None = None) -> list[Verdict]:
        """`cases`, when given, holds the case each pair comes from (for the traces)."""
        owners: dict[tuple[str, str], list[Case]] = {}
        for pair, case in zip(pairs, cases or ()):
            known = owners.setdefault(pair, [])
            if all(c.filename != case.filename for c in known):
                known.append(case)
        verdicts: dict[tuple[str, str], Verdict] = {}
        todo: list[tuple[str, str]] = []
        for pair in dict.fromkeys(pairs):
            pred, truth = pair
            if normalize(pred) == normalize(truth):
                verdicts[pair] = Verdict(True, "identical after normalisation")
                self.usage.shortcuts += 1
                continue
            hit = (self.cache.get_verdict(self.key(pred, truth), self.legacy_key(pred, truth))
                   if self.cache is not None else None)
            if hit is not None:
                verdicts[pair] = hit
                self.usage.cache_hits += 1
            else:
                todo.append(pair)
        if todo:
            verdicts.update(run_sync(self._ask_all(todo, owners)))
        return [verdicts[p] for p in pairs]

    async def _ask_all(self, pairs: list[tuple[str, str]],
                       owners: dict[tuple[str, str], list[Case]] | None = None
                       ) -> dict[tuple[str, str], Verdict]:
        hooks = _JudgeCalls(self, owners or {})
        return dict(await execute(self.session, pairs, hooks))

    def metrics(self, prices: PriceTable | None = None) -> dict[str, float]:
        """Judge usage as diagnosis/judge_* metrics, apart from the model's own tokens
        (judge_cost_usd left out when the judge's price is unknown)."""
        u = self.usage
        table = prices if prices is not None else load_prices()
        cost = cost_usd(self.model, u.input_tokens, u.output_tokens, table)
        return {"judge_calls": float(u.calls), "judge_cache_hits": float(u.cache_hits),
                "judge_shortcuts": float(u.shortcuts), "judge_unreadable": float(u.unreadable),
                "judge_api_errors": float(u.api_errors),
                "judge_input_tokens": float(u.input_tokens),
                "judge_output_tokens": float(u.output_tokens),
                **({} if cost is None else {"judge_cost_usd": cost})}

    def params(self) -> dict[str, str]:
        return {"judge": self.model, "judge_prompt.name": self.prompt.name,
                "judge_prompt.version": self.prompt.version,
                "judge_prompt.sha256": self.prompt.sha256}

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


@dataclass
class _JudgeCalls:
    """CallHooks of the judge (calls.runner.CallHooks): one call per (prediction, truth)
    pair not settled already (shortcuts and stored verdicts never reach the runner)."""

    judge: JudgeMatcher
    owners: dict[tuple[str, str], list[Case]]

    def request(self, pair: tuple[str, str]) -> Request:
        j = self.judge
        return Request(task=Task.diagnosis, filename="judge", case_id="judge",
                       prompt=j.prompt.render(prediction=pair[0], truth=pair[1]),
                       prompt_version=f"judge-{j.prompt.version}", settings=j.settings)

    def stored(self, pair: tuple[str, str], request: Request) -> Response | None:
        return None

    def keep(self, pair: tuple[str, str], request: Request, response: Response) -> None:
        pass  # the verdict, once read, is what is stored (result)

    def span(self, pair: tuple[str, str], request: Request, cached: bool) -> Any:
        j = self.judge
        if j.tracer is None:
            return nullcontext()
        return j.tracer.judge_span(request, j.model, j.prompt, pair, self.owners.get(pair, []))

    def result(self, pair: tuple[str, str], request: Request, outcome: Outcome,
               span: Any) -> tuple[tuple[str, str], Verdict]:
        j, u, resp = self.judge, self.judge.usage, outcome.response
        if resp is None:
            u.api_errors += 1
            verdict = Verdict(False, f"judge call failed: {outcome.error}")
            if span is not None:
                span.finish_verdict("api_error", verdict, outcome)
            return pair, verdict
        u.calls += 1
        u.input_tokens += resp.input_tokens or 0
        u.output_tokens += resp.output_tokens or 0
        read = read_verdict(resp.text)
        if read is None:
            u.unreadable += 1
            verdict = Verdict(False, f"judge answer unreadable: {resp.text[:120]!r}")
        else:
            verdict = Verdict(read[0], read[1] or ("match" if read[0] else "no match"))
            if j.cache is not None:
                j.cache.put_verdict(j.key(*pair), verdict, j.model, j.endpoint)
        if span is not None:
            span.finish_verdict("answered" if read is not None else "unreadable", verdict,
                                outcome)
        return pair, verdict

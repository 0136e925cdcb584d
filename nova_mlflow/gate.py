"""`nova-mlflow gate`: register a run's configuration and promote it only on a real gain.

Steps: the run's configuration (model, provider, frame, prompts with their texts,
generation settings) is logged as a pyfunc from code (tracking_pyfunc.py) and registered as
a new version of `--registered-model`, which gets the alias `challenger`. Then it meets the
current `champion` (its source run is the version's tag nova.run_id):

Decision rule, per chosen metric, over the cases both runs scored (paired by filename,
sorted, one fixed seed; metrics/stats.py):
    delta = mean(challenger) - mean(champion) >= min_delta   AND   p < alpha,
with p the TWO-sided paired bootstrap p-value of "no difference" (so, since delta must be
positive, the test is one-sided at alpha/2: deliberately conservative). Promotion (alias
`champion`) needs every chosen metric to pass; a tie (delta 0, p = 1) is rejected. With no
champion yet the first version is promoted. Default metric: the headline of the first task
the run scored, in the order localization/mAP30, diagnosis/top1, captioning/meteor.

The decision, reason and figures are stored as tags on the model version and on the run
(nova.gate_*), so anyone can recompute them from the two runs' logged per-case tables.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from nova_mlflow import __version__
from nova_mlflow.tracking import registry as reg
from nova_mlflow.compare import BOOTSTRAP_METRICS, TableReader, paired, parse_metric_flags
from nova_mlflow.errors import InputError
from nova_mlflow.metrics.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_difference, resample_indices
from nova_mlflow.prompts import DEFAULT_VERSION, Prompt, load_prompt
from nova_mlflow.providers import provider_kind
from nova_mlflow.schemas import Task
from nova_mlflow.tracking.registry import RunRecord

log = logging.getLogger("nova_mlflow")

DEFAULT_METRIC_ORDER = ("localization/mAP30", "diagnosis/top1", "captioning/meteor")
PROMOTED, REJECTED = "promoted", "rejected"
EPS = 1e-12  # float slack when comparing a delta with min_delta


class GateConfig(BaseModel):
    """The flags of `nova-mlflow gate`; extra="forbid" so a typo fails loudly."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    registered_model: str = Field(min_length=1)
    metrics: list[str] = Field(default_factory=list)
    min_delta: float = Field(0.0, ge=0.0, le=1.0)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    resamples: int = Field(DEFAULT_RESAMPLES, ge=100, le=100_000)
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    n_cases: int
    champion: float
    challenger: float
    delta: float
    low: float
    high: float
    p_value: float
    passed: bool
    why: str


@dataclass
class GateResult:
    decision: str
    reason: str
    registered_model: str
    version: str
    run_id: str
    metrics: list[str]
    champion_version: str | None = None
    champion_run_id: str | None = None
    checks: list[MetricCheck] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED

    def as_json(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "checks"},
                "checks": [asdict(c) for c in self.checks]}


# --- the statistical decision (pure: reproducible from the per-case tables) ---------------

def check_metric(metric: str, champion: dict[str, float], challenger: dict[str, float],
                 min_delta: float, alpha: float, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> MetricCheck:
    """One metric's verdict over the shared cases (see the module docstring)."""
    names, m = paired([champion, challenger])
    if not names:
        return MetricCheck(metric, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, False,
                           f"{metric}: no case scored by both runs")
    d = paired_difference(m[0], m[1], resample_indices(len(names), resamples, seed))
    big = d.delta >= min_delta - EPS
    real = d.p_value < alpha
    gain = d.delta > 0
    fails = ([] if big else [f"delta < min-delta {100 * min_delta:.2f} pts"]) + \
        ([] if real else [f"p >= alpha {alpha:g}"]) + ([] if gain else ["no gain"])
    passed = not fails
    why = (f"{metric}: {100 * m[1].mean():.2f} vs {100 * m[0].mean():.2f}, delta "
           f"{100 * d.delta:+.2f} pts (95% CI {100 * d.low:+.2f}..{100 * d.high:+.2f}), "
           f"p={d.p_value:.4f} over {len(names)} cases; "
           + ("passes" if passed else "fails: " + ", ".join(fails)))
    return MetricCheck(metric, len(names), float(m[0].mean()), float(m[1].mean()), d.delta,
                       d.low, d.high, d.p_value, passed, why)


def decide(checks: list[MetricCheck]) -> tuple[str, str]:
    """Promote only if every metric passes; the reason lists failures first."""
    failed = [c for c in checks if not c.passed]
    if failed:
        return REJECTED, "rejected: " + "; ".join(c.why for c in failed)
    return PROMOTED, "promoted: beats the champion on every metric: " + "; ".join(
        c.why for c in checks)


def default_metrics(tasks: set[str]) -> list[str]:
    for metric in DEFAULT_METRIC_ORDER:
        if BOOTSTRAP_METRICS[metric][0] in tasks:
            return [metric]
    raise InputError("the run has no per-case table for localization, diagnosis or captioning; "
                     "nothing to gate on")


# --- the run's configuration -> model_config -----------------------------------------------

def _prompt(run: RunRecord, task: str) -> tuple[dict, str | None]:
    """The prompt a run used, with its text: registry URI first, then prompts/ by version.

    The text must hash to the sha256 the run logged; a run that logged no prompt (an
    `evaluate` run) gets the default version, marked recorded=False.
    """
    p = run.params
    version, sha = p.get(f"prompt.{task}.version"), p.get(f"prompt.{task}.sha256")
    if version is None:
        pr = load_prompt(Task(task), DEFAULT_VERSION)
        return ({"name": pr.name, "version": pr.version, "sha256": pr.sha256,
                 "text": pr.template, "recorded": False}, None)
    uri = p.get(f"prompt.{task}.uri") or None
    text = reg.registry_prompt_text(uri) if uri else None
    if text is None or _sha(text) != sha:
        uri = None
        try:
            local = load_prompt(Task(task), version)
        except InputError:
            local = None
        if local is None or local.sha256 != sha:
            raise InputError(f"run {run.run_id}: prompt {task} {version} (sha256 {sha}) is in "
                             "neither the prompt registry nor prompts/; cannot register it")
        text = local.template
    return ({"name": p.get(f"prompt.{task}.name", f"nova-{task}"), "version": version,
             "sha256": sha, "text": text, "recorded": True}, uri)


def _sha(text: str) -> str:
    """The hash prompts.Prompt.sha256 gives a template (one definition, reused)."""
    return Prompt(task="", name="", version="", template=text, meta={}).sha256


def _number(params: dict, key: str, cast: type, default: object) -> object:
    v = params.get(key)
    if v in (None, "", "None"):
        return default
    try:
        return cast(float(v)) if cast is int else cast(v)
    except ValueError:
        raise InputError(f"run param {key}={v!r} is not a number") from None


def model_config_for(run: RunRecord) -> tuple[dict, list[str]]:
    """model_config of the pyfunc (tracking_pyfunc.py) and the registry prompt URIs to link."""
    p = run.params
    tasks = [t for t in p.get("tasks", "").split(",") if t]
    if not tasks:
        raise InputError(f"run {run.run_id}: no 'tasks' param; is it a nova-mlflow run?")
    prompts, uris = {}, []
    for t in tasks:
        prompts[t], uri = _prompt(run, t)
        if uri:
            uris.append(uri)
    model = p.get("model", "unknown")
    cfg = {
        "model": model, "provider": p.get("provider") or provider_kind(model),
        "frame": p.get("frame", "pixel_xyxy"), "tasks": tasks, "prompts": prompts,
        "settings": {"temperature": _number(p, "temperature", float, 0.0),
                     "max_tokens": _number(p, "max_tokens", int, 1024),
                     "seed": None if p.get("seed") == "None" else _number(p, "seed", int, 0)},
        "base_url": p.get("base_url") if p.get("base_url") not in (None, "", "None") else None,
        # the baseline retrieves diagnoses from a corpus: the run's dataset, if loadable
        "corpus": p.get("data") if model == "baseline" else None,
        "source_run_id": run.run_id, "package_version": __version__,
    }
    return cfg, uris


# --- the command ----------------------------------------------------------------------------

def run_gate(cfg: GateConfig) -> GateResult:
    """Register, set `challenger`, compare with `champion`, promote or reject; tag both."""
    run = reg.get_run(cfg.run_id)
    if run.status != "FINISHED":
        raise InputError(f"--run {run.run_id}: run is {run.status}; only finished runs can be gated")
    metrics = parse_metric_flags(cfg.metrics) or default_metrics(reg.table_tasks(run.run_id))
    reader = TableReader()
    mine = {m: reader.values(run.run_id, m) for m in metrics}
    for m, v in mine.items():
        if v is None:
            raise InputError(f"--metric {m}: run {run.label} has no per-case values for it")
    model_config, uris = model_config_for(run)
    if not all(pr["recorded"] for pr in model_config["prompts"].values()):
        log.warning("run %s logged no prompts (an evaluate run?): registering the default "
                    "prompt versions with it", run.run_id)
    champion = reg.alias_version(cfg.registered_model, "champion")
    mv = reg.register_configuration(cfg.registered_model, model_config, run, uris,
                                    {"nova.model": model_config["model"]})
    reg.set_alias(cfg.registered_model, "challenger", mv.version)
    result = GateResult("", "", cfg.registered_model, mv.version, run.run_id, metrics)
    if champion is None:
        result.decision, result.reason = PROMOTED, "promoted: no champion yet"
    else:
        result.champion_version = champion.version
        result.champion_run_id = champion.tags.get("nova.run_id") or champion.run_id
        for m in metrics:
            theirs = reader.values(result.champion_run_id, m) if result.champion_run_id else None
            if theirs is None:
                result.checks.append(MetricCheck(m, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, False,
                                                 f"{m}: the champion's run has no per-case values"))
            else:
                result.checks.append(check_metric(m, theirs, mine[m], cfg.min_delta, cfg.alpha,  # type: ignore[arg-type]
                                                  cfg.resamples, cfg.seed))
        result.decision, result.reason = decide(result.checks)
        result.reason += f" (champion: version {champion.version}, run {result.champion_run_id})"
    if result.promoted:
        reg.set_alias(cfg.registered_model, "champion", mv.version)
    _record(cfg, result)
    log.info("gate: %s version %s %s", cfg.registered_model, mv.version, result.reason)
    return result


def _record(cfg: GateConfig, result: GateResult) -> None:
    """Tags on the version and the run (and on the `mlflow run` project run, if any)."""
    details = json.dumps([{k: v for k, v in asdict(c).items() if k != "why"}
                          for c in result.checks], sort_keys=True)
    common = {"nova.gate_decision": result.decision, "nova.gate_reason": result.reason}
    reg.set_version_tags(cfg.registered_model, result.version, {
        **common, "nova.gate_metrics": ",".join(result.metrics),
        "nova.gate_min_delta": cfg.min_delta, "nova.gate_alpha": cfg.alpha,
        "nova.gate_resamples": cfg.resamples, "nova.gate_seed": cfg.seed,
        "nova.gate_champion_version": result.champion_version or "",
        "nova.gate_champion_run": result.champion_run_id or "", "nova.gate_details": details})
    reg.set_run_tags(result.run_id, {
        **common, "nova.gate_model_version": f"{cfg.registered_model}/{result.version}"})
    project = reg.project_run_id()
    if project and project != result.run_id:
        reg.set_run_tags(project, {**common, "nova.kind": "gate", "nova.gate_run": result.run_id,
                                   "nova.gate_model_version":
                                       f"{cfg.registered_model}/{result.version}"})

"""`nova-mlflow gate`: register a run's configuration as a model version, set `challenger`,
compare it with `champion` (analysis/gate.py decides), promote or reject, record why."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from nova_mlflow import __version__
from nova_mlflow.analysis.gate import (
    PROMOTED,
    GateResult,
    MetricCheck,
    check_metric,
    decide,
    default_metrics,
)
from nova_mlflow.analysis.compare import parse_metric_flags
from nova_mlflow.config import GateConfig
from nova_mlflow.errors import InputError
from nova_mlflow.pipeline.compare import TableReader
from nova_mlflow.prompts import DEFAULT_VERSION, Prompt, load_prompt
from nova_mlflow.providers import provider_kind
from nova_mlflow.schemas import Task
from nova_mlflow.tracking import registry as reg
from nova_mlflow.tracking.registry import RunRecord

log = logging.getLogger("nova_mlflow")


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
        "api_key_env": p.get("api_key_env") or None,
        # the dataset the run read: image_path is read only under its directory unless
        # image_roots is given (a key MLflow lets load_model(model_config=...) override)
        "data": p.get("data") or None, "image_roots": None,
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

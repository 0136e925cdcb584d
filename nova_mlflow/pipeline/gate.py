"""`nova-mlflow gate`: decide whether a run beats the registered model's `champion`
(analysis/gate.py, the same statistics as `compare`), register the run's configuration as a
version with alias `challenger`, promote it to `champion` or reject it, and log the decision,
the comparison it was taken from and the per-case table hashes on a gate run (the `mlflow run`
project run when there is one), so anyone can recompute it. `--dry-run` decides only.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from nova_mlflow import __version__
from nova_mlflow.analysis.gate import GateCheck, GateDecision, default_metrics, gate
from nova_mlflow.analysis.metric_specs import SKIPPED, SPECS
from nova_mlflow.config import CompareConfig, GateConfig
from nova_mlflow.errors import InputError
from nova_mlflow.pipeline.compare import (
    check_comparable,
    frames,
    parse_metric_flags,
    read_tables,
    stats_config,
    tmp_root,
)
from nova_mlflow.prompts import DEFAULT_VERSION, Prompt, load_prompt
from nova_mlflow.providers import provider_kind
from nova_mlflow.report.compare import CompareResult, fmt_delta, write_files
from nova_mlflow.report.tables import fmt
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
        # the dataset the run read (and its --images directory): image_path is read only
        # under those unless image_roots is given (load_model(model_config=...) may override)
        "data": p.get("data") or None, "images": p.get("images") or None,
        "image_roots": None,
        # the baseline retrieves diagnoses from a corpus: the run's dataset, if loadable
        "corpus": p.get("data") if model == "baseline" else None,
        "source_run_id": run.run_id, "package_version": __version__,
    }
    return cfg, uris


# --- the command ----------------------------------------------------------------------------

PROMOTED, REJECTED = "promoted", "rejected"


@dataclass
class GateResult:
    decision: str  # promoted | rejected
    reason: str
    registered_model: str
    version: str | None  # None on a dry run (nothing registered)
    run_id: str
    metrics: list[str]
    dry_run: bool = False
    champion_version: str | None = None
    champion_run_id: str | None = None
    checks: list[dict] = field(default_factory=list)  # per gated metric (_check)
    tables: dict[str, str] = field(default_factory=dict)  # "<run id>/<table>" -> sha256
    mismatches: list[str] = field(default_factory=list)
    gate_run_id: str | None = None
    comparison: CompareResult | None = field(default=None, repr=False)

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED

    def as_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "comparison"}


def gated_metrics(cfg: GateConfig, run: RunRecord, tasks: set[str]) -> list[str]:
    """The metrics to gate on: chosen (each must be gateable and scored by the run) or the
    default headline metric."""
    metrics = parse_metric_flags(cfg.metrics) or default_metrics(tasks)
    if not metrics:
        raise InputError(f"run {run.label} has no per-case table for localization, diagnosis "
                         "or captioning; nothing to gate on")
    for m in metrics:
        if m in SKIPPED:
            raise InputError(f"--metric {m}: cannot be gated: {SKIPPED[m]}")
        if SPECS[m].direction == 0:
            raise InputError(f"--metric {m}: has no better direction, so it cannot be gated")
        if SPECS[m].task not in tasks:
            raise InputError(f"--metric {m}: run {run.label} has no {SPECS[m].task} table")
    return metrics


def _check(comp: CompareResult, c: GateCheck, champion: str, challenger: str) -> dict:
    """One gated metric's figures and verdict (the JSON of a check)."""
    ms = comp.comparison.metrics.get(c.metric)
    if ms is None:
        return {"metric": c.metric, "passed": False, "why": f"{c.metric}: {c.why}"}
    s, base = ms.runs[challenger], ms.runs[champion]
    why = (f"{c.metric}: {fmt(c.metric, s.value)} vs {fmt(c.metric, base.value)}, delta "
           f"{fmt_delta(c.metric, s.delta)} (95% CI {fmt_delta(c.metric, s.delta_low)}.."
           f"{fmt_delta(c.metric, s.delta_high)}), adjusted p {s.p_adjusted:.3g} over "
           f"{ms.n_cases} slices in {ms.n_clusters} cases; " + ("passes" if c.passed else
                                                                 "fails: " + c.why))
    return {"metric": c.metric, "n_cases": ms.n_cases, "n_clusters": ms.n_clusters,
            "champion": base.value, "challenger": s.value, "delta": s.delta,
            "delta_low": s.delta_low, "delta_high": s.delta_high, "se_delta": s.se_delta,
            "p_value": s.p_value, "p_adjusted": s.p_adjusted, "mde": s.mde, "gain": c.gain,
            "gain_low": c.gain_low, "passed": c.passed, "why": why}


def decide(cfg: GateConfig, run: RunRecord, metrics: list[str], result: GateResult) -> None:
    """Fill `result` with the decision against the current champion (no registry writes)."""
    champion = reg.alias_version(cfg.registered_model, "champion")
    if champion is None:
        result.decision, result.reason = PROMOTED, "promoted: no champion yet"
        return
    result.champion_version = champion.version
    champ_id = champion.tags.get("nova.run_id") or champion.run_id
    result.champion_run_id = champ_id
    if champ_id == run.run_id:
        result.decision = REJECTED
        result.reason = (f"rejected: run {run.run_id} is already the champion's run (version "
                         f"{champion.version})")
        return
    if not champ_id:
        raise InputError(f"champion version {champion.version} of {cfg.registered_model!r} "
                         "names no source run (tag nova.run_id): cannot compare with it")
    champ = reg.get_run(champ_id)
    tables = read_tables([champ, run])
    result.tables = {f"{r}/{t.path}": t.sha256 for r, by_task in tables.items()
                     for task, t in by_task.items() if task in {SPECS[m].task for m in metrics}}
    result.mismatches = check_comparable([champ, run], {r: set(t) for r, t in tables.items()},
                                         cfg.allow_mismatch)
    ccfg = CompareConfig(resamples=cfg.resamples, seed=cfg.seed, adjust=cfg.adjust,
                         alpha=cfg.alpha)
    dfs = frames(tables)
    try:
        decision, comp = gate(dfs[champ_id], dfs[run.run_id], metrics, stats_config(ccfg, metrics),
                              cfg.min_delta, (champ_id, run.run_id))
    except ValueError as exc:
        raise InputError(f"cannot compare with the champion: {exc}") from None
    result.comparison = CompareResult(comp, {champ_id: champ.run_name, run.run_id: run.run_name},
                                      {champ_id: champ.metrics, run.run_id: run.metrics},
                                      result.mismatches)
    result.checks = [_check(result.comparison, c, champ_id, run.run_id) for c in decision.checks]
    _verdict(result, decision, champion.version)


def _verdict(result: GateResult, decision: GateDecision, champion_version: str) -> None:
    whys = [c["why"] for c in result.checks]
    result.decision = PROMOTED if decision.promote else REJECTED
    failed = [c["why"] for c in result.checks if not c["passed"]]
    result.reason = ("promoted: beats the champion on every metric: " + "; ".join(whys)
                     if decision.promote else "rejected: " + "; ".join(failed))
    result.reason += f" (champion: version {champion_version}, run {result.champion_run_id})"


def run_gate(cfg: GateConfig) -> GateResult:
    """Decide, then (unless a dry run) register, set the aliases and log the gate run."""
    run = reg.get_run(cfg.run_id)
    if run.status != "FINISHED":
        raise InputError(f"--run {run.run_id}: run is {run.status}; only finished runs can be gated")
    metrics = gated_metrics(cfg, run, reg.table_tasks(run.run_id))
    model_config, uris = model_config_for(run)
    result = GateResult("", "", cfg.registered_model, None, run.run_id, metrics, cfg.dry_run)
    decide(cfg, run, metrics, result)
    if cfg.dry_run:
        log.info("gate (dry run, nothing registered): %s", result.reason)
        return result
    if not all(pr["recorded"] for pr in model_config["prompts"].values()):
        log.warning("run %s logged no prompts (an evaluate run?): registering the default "
                    "prompt versions with it", run.run_id)
    mv = reg.register_configuration(cfg.registered_model, model_config, run, uris,
                                    {"nova.model": model_config["model"]})
    result.version = mv.version
    reg.set_alias(cfg.registered_model, "challenger", mv.version)
    if result.promoted:
        reg.set_alias(cfg.registered_model, "champion", mv.version)
    _record(cfg, result, run)
    log.info("gate: %s version %s %s", cfg.registered_model, mv.version, result.reason)
    return result


def _record(cfg: GateConfig, result: GateResult, run: RunRecord) -> None:
    """The gate run (decision, comparison, table hashes), then tags on the version and the run."""
    common = {"nova.gate_decision": result.decision, "nova.gate_reason": result.reason}
    model_version = f"{cfg.registered_model}/{result.version}"
    with tempfile.TemporaryDirectory(prefix="nova-gate-", dir=tmp_root()) as tmp:
        out = Path(tmp)
        decision = out / "gate.json"
        decision.write_text(json.dumps({**result.as_json(), "config": cfg.model_dump(
            mode="json")}, indent=1, sort_keys=True), encoding="utf-8")
        files = [(decision, "gate")]
        if result.comparison is not None:
            files += write_files(result.comparison, out / "compare")
        tags = {**common, "nova.kind": "gate", "nova.gate_model_version": model_version,
                "nova.challenger_run": result.run_id,
                "nova.champion_run": result.champion_run_id or "",
                "nova.gate_tables": json.dumps(result.tables, sort_keys=True)}
        if result.mismatches:
            tags["nova.mismatches"] = "; ".join(result.mismatches)
        params = {"registered_model": cfg.registered_model, "version": result.version,
                  "metrics": ",".join(result.metrics), "min_delta": cfg.min_delta,
                  "alpha": cfg.alpha, "adjust": cfg.adjust, "resamples": cfg.resamples,
                  "seed": cfg.seed, "allow_mismatch": cfg.allow_mismatch}
        project = reg.project_run_id()
        if project and project != result.run_id:
            reg.log_to_run(project, files, tags, params)
            result.gate_run_id = project
        else:
            result.gate_run_id = reg.log_run(run.experiment_id, f"gate {model_version}", files,
                                             tags, params)
    details = json.dumps([{k: v for k, v in c.items() if k != "why"} for c in result.checks],
                         sort_keys=True)
    reg.set_version_tags(cfg.registered_model, result.version or "", {
        **common, "nova.gate_metrics": ",".join(result.metrics),
        "nova.gate_min_delta": cfg.min_delta, "nova.gate_alpha": cfg.alpha,
        "nova.gate_adjust": cfg.adjust, "nova.gate_resamples": cfg.resamples,
        "nova.gate_seed": cfg.seed, "nova.gate_champion_version": result.champion_version or "",
        "nova.gate_champion_run": result.champion_run_id or "", "nova.gate_details": details,
        "nova.gate_run_id": result.gate_run_id, "nova.gate_tables": tags["nova.gate_tables"]})
    reg.set_run_tags(result.run_id, {**common, "nova.gate_model_version": model_version,
                                     "nova.gate_run_id": result.gate_run_id})

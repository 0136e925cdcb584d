"""What every command checks and records before its MLflow run opens.

Everything that can be wrong with the input (flags, prompts, model name, key, prices,
WordNet) is checked here, before any run exists, so bad input never leaves a run behind.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from nova_mlflow import __version__, tracking
from nova_mlflow.config import RetryPolicy, RunConfig
from nova_mlflow.data import Dataset, cases_frame
from nova_mlflow.errors import InputError
from nova_mlflow.parsing.frames import frame_for
from nova_mlflow.pricing import load_prices
from nova_mlflow.prompts import DEFAULT_VERSION, Prompt, load_prompt
from nova_mlflow.providers import provider_kind
from nova_mlflow.schemas import METRICS_VERSION, SCHEMA_VERSION, Frame, Task
from nova_mlflow.secrets import KEY_VARS, api_key


def default_experiment(dataset: Dataset) -> str:
    return f"nova-{dataset.name}".replace("hf://", "").replace("/", "-")


def model_frame(model: str, explicit: Frame | None) -> Frame:
    """The box frame a model writes in (the catalog's, or the explicit flag)."""
    try:
        return frame_for(model, explicit)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def check_key(model: str, api_key_env: str | None = None) -> None:
    """A missing key fails before any work, naming the variable to set (openai-compatible
    servers may take none, unless --api-key-env names one)."""
    kind = provider_kind(model)
    if api_key_env:
        api_key(kind, env_name=api_key_env)
    elif kind in KEY_VARS and kind != "openai-compatible":
        api_key(kind)


def check_resources(tasks: tuple[Task, ...]) -> None:
    """METEOR needs WordNet: find it now, not after the model calls were paid for. Only found:
    it is read when a METEOR value is not in the score memo (scoring/captioning.py)."""
    if Task.captioning in tasks:
        from nova_mlflow.wordnet import wordnet_source

        wordnet_source()  # WordNetMissing (exit 2) if absent or incomplete


def check_config(cfg: RunConfig) -> tuple[Frame, dict[Task, Prompt]]:
    """Every check that needs no data and no network, so bad flags fail before any work."""
    frame = model_frame(cfg.model, cfg.frame)
    check_key(cfg.model, cfg.api_key_env)
    load_prices(cfg.prices)
    check_resources(cfg.tasks)
    return frame, {t: load_prompt(t, cfg.prompts.get(t, DEFAULT_VERSION)) for t in cfg.tasks}


def make_judge(judge: str, concurrency: int = 8, retry: RetryPolicy | None = None) -> Any:
    """None for the offline matcher; else the LLM judge (its key is checked here, early)."""
    if judge in ("none", "offline", ""):
        return None
    from nova_mlflow.judge import JudgeMatcher

    kind = provider_kind(judge)
    if kind in ("baseline", "replay", "unknown"):
        raise InputError(f"--judge {judge!r}: use a provider model (e.g. gpt-4o, as in the "
                         "paper) or 'none' for the offline matcher")
    check_key(judge)
    return JudgeMatcher(judge, concurrency=concurrency, policy=retry)


def judge_setup(judge: Any) -> tuple[dict, dict[str, str]]:
    """Params and registry URI of the judge prompt (nothing when the offline matcher is used)."""
    if judge is None:
        return {"judge": "none"}, {}
    p = judge.prompt
    uri = tracking.ensure_registered(p.name, p.template, p.sha256, p.version,
                                     p.meta.get("description", ""))
    return {**judge.params(), "judge_prompt.uri": uri}, {"judge": uri}


def register_prompts(prompts: dict[Task, Prompt]) -> dict[Task, str]:
    """Registry URIs of the prompts used (a new registry version only when the text changed)."""
    return {t: tracking.ensure_registered(p.name, p.template, p.sha256, p.version,
                                          p.meta.get("description", ""))
            for t, p in prompts.items()}


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit, asked of git once per process (a sweep's runs share it)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def run_tags(dataset: Dataset, tasks: tuple[Task, ...]) -> dict:
    tags = {"nova.dataset_digest": dataset.digest, "nova.full_dataset_digest": dataset.full_digest,
            "nova.schema_version": SCHEMA_VERSION, "nova.metrics_version": METRICS_VERSION,
            "nova.package_version": __version__, "nova.tasks": ",".join(t.value for t in tasks)}
    commit = git_commit()
    if commit:
        tags["nova.git_commit"] = commit
    return tags


def images_param(images: str | None) -> dict:
    """`--images DIR`, when given, as a param (resolved): where the run's image bytes came
    from, and a directory the gated pyfunc may read image_path under."""
    return {"images": str(Path(images).expanduser().resolve())} if images else {}


def setup_params(model: str, frame: Frame, dataset: Dataset, prompts: dict[Task, Prompt],
                 tasks: tuple[Task, ...], extra: dict) -> dict:
    """The params every run logs: model, frame, data, tasks, prompts, versions, + extra."""
    params = {
        "model": model, "provider": provider_kind(model), "frame": frame.value,
        "data": dataset.source if dataset.name != "demo" else "demo",
        "dataset_name": dataset.name, "dataset_digest": dataset.digest,
        "full_dataset_digest": dataset.full_digest,
        "dataset_layout": dataset.layout, "n_cases": len(dataset),
        "tasks": ",".join(t.value for t in tasks),
        "package_version": __version__, "schema_version": SCHEMA_VERSION,
        "metrics_version": METRICS_VERSION,
    }
    if Task.captioning in tasks:  # where METEOR's WordNet came from (bundled, nltk, a dir)
        from nova_mlflow.wordnet import wordnet_source

        source = wordnet_source()
        params["wordnet"] = "bundled" if source.startswith("bundled") else source
    for t, p in prompts.items():
        params[f"prompt.{t.value}.name"] = p.name
        params[f"prompt.{t.value}.version"] = p.version
        params[f"prompt.{t.value}.sha256"] = p.sha256
    params.update(extra)
    return params


def log_dataset(run: tracking.RunLogger, dataset: Dataset) -> None:
    run.dataset(cases_frame(dataset), name=dataset.name, source=dataset.source,
                digest=dataset.digest, targets="final_diagnosis")

"""The Python API: what the `nova-mlflow` commands do, as functions returning results.

Keyword arguments are named as the CLI flags (`--max-tokens` -> `max_tokens`,
`--no-cache` -> `no_cache`); results come back as objects (run id, metrics, ...) instead of
being printed. The functions work inside a running event loop (a Jupyter notebook): provider
calls then run on a worker thread with their own loop.

    import nova_mlflow
    result = nova_mlflow.run(model="baseline", limit=12)
    result.run_id, result.metrics["diagnosis/top1"]

The CLI (cli.py) is a thin shell over these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nova_mlflow.config import (
    CompareConfig,
    EvaluateConfig,
    GateConfig,
    RetryPolicy,
    RunConfig,
    SweepConfig,
)
from nova_mlflow.errors import InputError
from nova_mlflow.schemas import GenerationSettings, Task

Prompts = Mapping[str, str] | Iterable[str] | str | None


def _tasks(value: str | Iterable[str]) -> tuple[Task, ...]:
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)
             if v and v.strip()]
    bad = [n for n in names if n not in {t.value for t in Task}]
    if bad or not names:
        raise InputError(f"--tasks {','.join(bad) or value!r}: use a comma-separated subset of "
                         f"{','.join(t.value for t in Task)}")
    return tuple(Task(n) for n in dict.fromkeys(names))


def _prompt_flags(prompt: Prompts) -> list[str]:
    """`prompt=` as the CLI takes it ("TASK=VERSION", repeated or comma-separated), or a
    mapping {task: version} (a sweep: {task: [versions]})."""
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, Mapping):
        return [f"{t}={v}" for t, vs in prompt.items()
                for v in ([vs] if isinstance(vs, str) else vs)]
    return [str(p) for p in prompt]


def run_config(*, data: str = "demo", images: str | Path | None = None, model: str = "baseline",
               frame: str | None = None, tasks: str | Iterable[str] = "localization,captioning,diagnosis",
               prompt: Prompts = None, limit: int | None = None, concurrency: int = 8,
               temperature: float = 0.0, max_tokens: int = 1024, seed: int | None = 0,
               judge: str = "none", experiment: str | None = None, run_name: str | None = None,
               base_url: str | None = None, api_key_env: str | None = None,
               rpm: float | None = None, max_retries: int = 6,
               retry_base: float = 1.0, timeout: float = 120.0, no_cache: bool = False,
               refresh: bool = False, prices: str | None = None, no_progress: bool = False,
               no_traces: bool = False) -> RunConfig:
    """The RunConfig the `run` flags describe (validated: a bad value is an error here)."""
    from nova_mlflow.prompts import parse_prompt_flags

    return RunConfig(
        data=data, images=str(images) if images else None, model=model, frame=frame,
        tasks=_tasks(tasks), prompts=parse_prompt_flags(_prompt_flags(prompt)),
        limit=limit or None, concurrency=concurrency, judge=judge, experiment=experiment,
        run_name=run_name, progress=not no_progress,
        settings=GenerationSettings(temperature=temperature, max_tokens=max_tokens, seed=seed),
        base_url=base_url, api_key_env=api_key_env or None, rpm=rpm, use_cache=not no_cache,
        refresh=refresh, prices=prices, traces=not no_traces,
        retry=RetryPolicy(max_retries=max_retries, base_delay=retry_base, timeout=timeout))


def run(**flags: Any):
    """Run a model on NOVA's tasks and log one MLflow run; returns a RunSummary
    (run_id, experiment_id, metrics, scores, answers_path, dataset)."""
    from nova_mlflow.pipeline.run import run as run_pipeline

    return run_pipeline(run_config(**flags))


def sweep(*, model: str | Iterable[str], prompt: Prompts = None, **flags: Any):
    """One parent run and one child per model x prompt version; returns a SweepSummary
    (parent_run_id, children, failures). `prompt` may repeat a task to sweep it."""
    from nova_mlflow.pipeline.sweep import parse_prompt_lists, sweep as sweep_pipeline

    models = [model] if isinstance(model, str) else list(model)
    names = [m.strip() for v in models for m in v.split(",") if m.strip()]
    if not names:
        raise InputError("--model: no model name given")
    grid = parse_prompt_lists(_prompt_flags(prompt))
    base = run_config(model=names[0], **flags)
    return sweep_pipeline(SweepConfig(run=base, models=names, prompt_grid=grid))


def evaluate(*, data: str, outputs: str | Path | None = None, from_run: str | None = None,
             images: str | Path | None = None, model: str | None = None,
             frame: str | None = None, judge: str = "none", experiment: str | None = None,
             run_name: str | None = None, no_traces: bool = False):
    """Score answers produced elsewhere and log one run; returns a RunSummary."""
    from nova_mlflow.pipeline.evaluate import evaluate as evaluate_pipeline

    cfg = EvaluateConfig(data=data, outputs=Path(outputs) if outputs else None,
                         from_run=from_run, images=str(images) if images else None,
                         model=model, frame=frame, judge=judge, experiment=experiment,
                         run_name=run_name, traces=not no_traces)
    return evaluate_pipeline(cfg)


def compare(*, experiment: str | None = None, run: str | Iterable[str] = (),
            baseline: str | None = None, metric: str | Iterable[str] = (),
            adjust: str = "holm", allow_mismatch: bool = False, alpha: float = 0.05,
            resamples: int = 2000, seed: int | None = None, p_method: str = "wald",
            no_log: bool = False):
    """Runs side by side with case-clustered paired statistics; returns the CompareResult
    (`.comparison.metrics[key].runs[run_id]`, `.to_json()`, `.compare_run_id`)."""
    from nova_mlflow.pipeline.compare import run_compare

    extra = {"seed": seed} if seed is not None else {}
    cfg = CompareConfig(experiment=experiment, runs=[run] if isinstance(run, str) else list(run),
                        baseline=baseline,
                        metrics=[metric] if isinstance(metric, str) else list(metric),
                        log=not no_log, resamples=resamples, adjust=adjust, alpha=alpha,  # type: ignore[arg-type]
                        p_method=p_method, allow_mismatch=allow_mismatch, **extra)  # type: ignore[arg-type]
    return run_compare(cfg)


def gate(*, run: str, registered_model: str, metric: str | Iterable[str] = (),
         min_delta: float = 0.0, alpha: float = 0.05, dry_run: bool = False,
         adjust: str = "holm", allow_mismatch: bool = False, resamples: int = 2000,
         seed: int | None = None):
    """Promote a run's configuration to `champion` only on a real gain over the current one.
    Returns the GateResult (`.promoted`, `.reason`, `.version`, `.checks`); `dry_run` decides
    without registering anything."""
    from nova_mlflow.pipeline.gate import run_gate

    extra = {"seed": seed} if seed is not None else {}
    cfg = GateConfig(run_id=run, registered_model=registered_model,
                     metrics=[metric] if isinstance(metric, str) else list(metric),
                     min_delta=min_delta, alpha=alpha, resamples=resamples, dry_run=dry_run,
                     adjust=adjust, allow_mismatch=allow_mismatch, **extra)  # type: ignore[arg-type]
    return run_gate(cfg)


def sync() -> list[str]:
    """Log the runs whose tracking server was unreachable at the end; their run ids."""
    from nova_mlflow.pipeline.sync import sync_all

    return sync_all()


def cache_stats() -> dict[str, Any]:
    """What the response cache holds: {"path", "bytes", "rows"}, one row per kind
    (responses / verdicts), provider, model and endpoint with its entries, oldest, newest."""
    from nova_mlflow.pipeline.cache import cache_stats as stats

    return stats()


def cache_prune(*, older_than: float) -> dict[str, Any]:
    """Remove cached answers and verdicts older than `older_than` days; what was removed."""
    from nova_mlflow.pipeline.cache import prune_cache

    if older_than < 0:
        raise InputError(f"--older-than {older_than}: use a number of days >= 0")
    return prune_cache(older_than)


def validate(*, data: str = "demo", images: str | Path | None = None,
             no_images: bool = False) -> dict[str, Any]:
    """Check a dataset (exit-2 error on the first bad row); its counts and digest."""
    from nova_mlflow.data import load_dataset

    ds = load_dataset(data, images_dir=images, check_images=not no_images)
    return {"cases": len(ds), "case_ids": len({c.case_id for c in ds.cases}),
            "final_diagnoses": len({c.final_diagnosis for c in ds.cases}),
            "gold_boxes": sum(len(c.gold_boxes) for c in ds.cases),
            "layout": ds.layout, "digest": ds.digest, "source": ds.source}

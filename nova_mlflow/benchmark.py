"""One benchmark run end to end: data -> prompts -> provider -> answers -> scores -> MLflow.

Everything that can be wrong with the input (data, flags, prompts, model name) is checked
before the MLflow run opens, so bad input never leaves a run behind. Answers are on disk
before they are scored.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nova_mlflow import __version__, tracking
from nova_mlflow.data.answers import AnswerLog, latest_answers, read_answers
from nova_mlflow.data import Dataset, cases_frame, load_dataset
from nova_mlflow.data.images import read_bytes
from nova_mlflow.errors import InputError, ProviderError
from nova_mlflow.parsing.frames import frame_for
from nova_mlflow.schemas import Frame
from nova_mlflow.paths import run_dir
from nova_mlflow.prompts import DEFAULT_VERSION, Prompt, load_prompt
from nova_mlflow.providers import create_provider, provider_kind
from nova_mlflow.providers.base import GenerationSettings, Request
from nova_mlflow.report import markdown_table, text_table
from nova_mlflow.report_html import build_report
from nova_mlflow.cache import ResponseCache
from nova_mlflow.paths import cache_dir
from nova_mlflow.pricing import PRICES_AS_OF, load_prices
from nova_mlflow.runner import Job, RetryPolicy, RunStats, run_jobs
from nova_mlflow.secrets import KEY_VARS, api_key, safe_url
from nova_mlflow.sync import TrackingUnavailable, save_pending
from nova_mlflow.tracking_traces import Tracer
from nova_mlflow.tracking_traces import flush as flush_traces
from nova_mlflow.metrics.usage import usage_metrics
from nova_mlflow.schemas import (
    ALL_TASKS,
    SCHEMA_VERSION,
    Answer,
    CaptionPrediction,
    DiagnosisPrediction,
    LocalizationPrediction,
    Task,
)

#: Record types whose JSON Schema each run logs (schemas/<name>.v<N>.schema.json).
SCHEMA_MODELS = {"answer": Answer, "localization_prediction": LocalizationPrediction,
                 "caption_prediction": CaptionPrediction,
                 "diagnosis_prediction": DiagnosisPrediction}
from nova_mlflow.scoring import ScoreContext, Scores, score, write_artifacts

log = logging.getLogger("nova_mlflow")


class RunConfig(BaseModel):
    """The flags of `nova-mlflow run`; extra="forbid" so a typo fails loudly."""

    model_config = ConfigDict(extra="forbid")

    data: str = "demo"
    images: str | None = None
    model: str = "baseline"
    frame: Frame | None = None
    tasks: tuple[Task, ...] = ALL_TASKS
    prompts: dict[Task, str] = Field(default_factory=dict)
    limit: int | None = Field(None, gt=0)
    concurrency: int = Field(8, ge=1, le=512)
    judge: str = "none"
    experiment: str | None = None
    run_name: str | None = None
    settings: GenerationSettings = GenerationSettings()
    progress: bool = True
    base_url: str | None = None
    retry: RetryPolicy = RetryPolicy()
    rpm: float | None = Field(None, gt=0)
    use_cache: bool = True
    refresh: bool = False
    prices: str | None = None
    traces: bool = True  # one MLflow trace per call + per-case assessments (tracking_traces)


@dataclass
class RunSummary:
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    scores: Scores
    answers_path: Path
    dataset: Dataset


def default_experiment(dataset: Dataset) -> str:
    return f"nova-{dataset.name}".replace("hf://", "").replace("/", "-")


def _frame(model: str, explicit: Frame | None) -> Frame:
    try:
        return frame_for(model, explicit)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def make_judge(judge: str, concurrency: int = 8, retry: RetryPolicy | None = None):
    """None for the offline matcher; else the LLM judge (its key is checked here, early)."""
    if judge in ("none", "offline", ""):
        return None
    from nova_mlflow.judge import JudgeMatcher

    kind = provider_kind(judge)
    if kind in ("baseline", "replay", "unknown"):
        raise InputError(f"--judge {judge!r}: use a provider model (e.g. gpt-4o, as in the "
                         "paper) or 'none' for the offline matcher")
    if kind in KEY_VARS and kind != "openai-compatible":
        api_key(kind)
    return JudgeMatcher(judge, concurrency=concurrency, policy=retry)


def _judge_setup(judge) -> tuple[dict, dict[str, str]]:
    """Params and registry URI of the judge prompt (nothing when the offline matcher is used)."""
    if judge is None:
        return {"judge": "none"}, {}
    p = judge.prompt
    uri = tracking.ensure_registered(p.name, p.template, p.sha256, p.version,
                                     p.meta.get("description", ""))
    return {**judge.params(), "judge_prompt.uri": uri}, {"judge": uri}


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The checkout's commit, asked of git once per process (a sweep's runs share it)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def make_request(job: Job, prompts: dict[Task, Prompt], settings: GenerationSettings) -> Request:
    c, prompt = job.case, prompts[job.task]
    image = None
    if job.task in (Task.localization, Task.captioning):
        image = read_bytes(c.image_path)
    text = prompt.render(**{k: v for k, v in {
        "width": c.image_width, "height": c.image_height,
        "clinical_history": c.clinical_history or "(not given)",
        "caption": c.caption or "(not given)",
    }.items() if k in prompt.variables})
    return Request(task=job.task, filename=c.filename, case_id=c.case_id, prompt=text,
                   prompt_version=prompt.version, image_png=image,
                   image_size=(c.image_width, c.image_height) if image is not None else None,
                   settings=settings)


def _setup_params(model: str, frame: Frame, dataset: Dataset, prompts: dict[Task, Prompt],
                  tasks: tuple[Task, ...], extra: dict) -> dict:
    params = {
        "model": model, "provider": provider_kind(model), "frame": frame.value,
        "data": dataset.source if dataset.name != "demo" else "demo",
        "dataset_name": dataset.name, "dataset_digest": dataset.digest,
        "dataset_layout": dataset.layout, "n_cases": len(dataset),
        "tasks": ",".join(t.value for t in tasks),
        "package_version": __version__, "schema_version": SCHEMA_VERSION,
    }
    for t, p in prompts.items():
        params[f"prompt.{t.value}.name"] = p.name
        params[f"prompt.{t.value}.version"] = p.version
        params[f"prompt.{t.value}.sha256"] = p.sha256
    params.update(extra)
    return params


def log_run_setup(run: tracking.RunLogger, cfg: RunConfig, frame: Frame, dataset: Dataset,
                  prompts: dict[Task, Prompt], prompt_uris: dict[Task, str], judge_params: dict,
                  *, base_url: str | None, cache: bool) -> dict:
    """What a run logs before its first call: params, the dataset input, the run config.

    Returns the params (the HTML report shows them). The logging benchmark calls this too,
    so it times what a run does.
    """
    params = _setup_params(cfg.model, frame, dataset, prompts, cfg.tasks, {
        "temperature": cfg.settings.temperature, "max_tokens": cfg.settings.max_tokens,
        "seed": cfg.settings.seed, **judge_params, "concurrency": cfg.concurrency,
        "limit": cfg.limit, "base_url": base_url,
        "max_retries": cfg.retry.max_retries, "timeout_s": cfg.retry.timeout, "rpm": cfg.rpm,
        "cache": "refresh" if cfg.refresh else ("on" if cache else "off"),
        **{f"prompt.{t.value}.uri": uri for t, uri in prompt_uris.items()},
        "prices_as_of": PRICES_AS_OF if not cfg.prices else "custom"})
    run.params(params)
    run.dataset(cases_frame(dataset), name=dataset.name, source=dataset.source,
                digest=dataset.digest, targets="final_diagnosis")
    run.dict(cfg.model_dump(mode="json"), "config/run_config.json")
    return params


def register_prompts(prompts: dict[Task, Prompt]) -> dict[Task, str]:
    """Registry URIs of the prompts used (a new registry version only when the text changed)."""
    return {t: tracking.ensure_registered(p.name, p.template, p.sha256, p.version,
                                          p.meta.get("description", ""))
            for t, p in prompts.items()}


def _tags(dataset: Dataset, tasks: tuple[Task, ...]) -> dict:
    tags = {"nova.dataset_digest": dataset.digest, "nova.schema_version": SCHEMA_VERSION,
            "nova.package_version": __version__, "nova.tasks": ",".join(t.value for t in tasks)}
    commit = _git_commit()
    if commit:
        tags["nova.git_commit"] = commit
    return tags


def _log_results(run: tracking.RunLogger, scores: Scores, cases: list, answers_path: Path,
                 title: str, params: dict, run_metrics: dict | None = None) -> None:
    """Metrics + per-case tables (one upload, one store write), then the files of the run.

    Everything that goes under results/ is written into one local folder first and uploaded
    with one call: the summary, Tables 1-3, Figures 4-6 and the HTML report.
    """
    metrics = scores.metrics
    out_dir = answers_path.parent / "report"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir()
    run.results({**(run_metrics or {}), **metrics},
                {f"tables/{task.value}_cases.json": ts.table for task, ts in scores.tasks.items()},
                answers_path.parent / "tables-staging")
    run.artifact(answers_path, "answers")
    schemas = answers_path.parent / "schemas"
    schemas.mkdir(exist_ok=True)
    for name, model in SCHEMA_MODELS.items():
        (schemas / f"{name}.v{SCHEMA_VERSION}.schema.json").write_text(
            json.dumps(model.model_json_schema(), indent=2), encoding="utf-8")
    run.artifacts(schemas, "schemas")
    (out_dir / "summary.md").write_text(markdown_table(metrics, title), encoding="utf-8")
    write_artifacts(scores, cases, out_dir)
    build_report(out_dir, metrics, title, params)
    run.artifacts(out_dir, "results")


def _score_and_log(run: tracking.RunLogger, cfg: RunConfig, dataset: Dataset, answers: list,
                   frame: Frame, judge, prices: dict, params: dict, answers_path: Path,
                   title: str, run_metrics: dict) -> Scores:
    """Score the answers and log everything about them into `run`."""
    amap = {(a.filename, a.task): a for a in answers}
    scores = score(dataset.cases, amap, cfg.tasks,
                   ScoreContext(frame, cfg.judge, cfg.model, matcher=judge))
    for task, ts in scores.tasks.items():
        ts.metrics.update(usage_metrics([a for a in answers if a.task is task], cfg.model, prices))
    if judge is not None and Task.diagnosis in scores.tasks:
        scores.tasks[Task.diagnosis].metrics.update(judge.metrics(prices))
    _log_results(run, scores, dataset.cases, answers_path, title, params, run_metrics)
    return scores


def log_pending_run(run_id: str, cfg: RunConfig, answers_path: Path, title: str) -> Scores:
    """`nova-mlflow sync`: results of a run whose server was away, logged into that run."""
    frame, _ = check_config(cfg)
    judge = make_judge(cfg.judge, cfg.concurrency, cfg.retry)
    dataset = load_dataset(cfg.data, images_dir=cfg.images).limited(cfg.limit)
    answers = list(latest_answers(answers_path).values())
    with tracking.resume_run(run_id) as run:
        params = dict(tracking.get_run(run_id).data.params)
        if judge is not None and cfg.traces:  # the judge's calls are traces of the run
            judge.tracer = Tracer(run.run_id, run.experiment_id, cfg.model, {}, frame)
        scores = _score_and_log(run, cfg, dataset, answers, frame, judge, load_prices(cfg.prices),
                                params, answers_path, title, {"run/synced": 1.0})
    return scores


def _check_key(model: str) -> None:
    """A missing key fails before any work, naming the variable to set."""
    kind = provider_kind(model)
    if kind in KEY_VARS and kind != "openai-compatible":
        api_key(kind)


def check_config(cfg: RunConfig) -> tuple[Frame, dict[Task, Prompt]]:
    """Every check that needs no data and no network, so bad flags fail before any work."""
    frame = _frame(cfg.model, cfg.frame)
    _check_key(cfg.model)
    load_prices(cfg.prices)
    _check_resources(cfg.tasks)
    return frame, {t: load_prompt(t, cfg.prompts.get(t, DEFAULT_VERSION)) for t in cfg.tasks}


def _check_resources(tasks: tuple[Task, ...]) -> None:
    """METEOR needs WordNet: find (or build) it now, not after the model calls were paid for."""
    if Task.captioning in tasks:
        from nova_mlflow.nlp_resources import wordnet

        wordnet()


def run_benchmark(cfg: RunConfig, dataset: Dataset | None = None) -> RunSummary:
    """One run; `dataset` may be passed in already loaded (a sweep loads it once)."""
    frame, prompts = check_config(cfg)
    prices = load_prices(cfg.prices)
    judge = make_judge(cfg.judge, cfg.concurrency, cfg.retry)
    if dataset is None:
        dataset = load_dataset(cfg.data, images_dir=cfg.images)
    # the baseline's retrieval corpus is the whole dataset, whatever --limit says
    provider = create_provider(cfg.model, cases=dataset.cases, base_url=cfg.base_url,
                               timeout=cfg.retry.timeout)
    dataset = dataset.limited(cfg.limit)
    cache = ResponseCache(cache_dir() / "responses.sqlite") if cfg.use_cache else None
    jobs = [Job(c, t) for t in cfg.tasks for c in dataset.cases]
    versions = "+".join(f"{t.value[:3]}-{p.version}" for t, p in prompts.items())
    run_name = cfg.run_name or f"{cfg.model} {versions}"
    prompt_uris = register_prompts(prompts)
    judge_params, judge_uri = _judge_setup(judge)
    with tracking.start_run(cfg.experiment or default_experiment(dataset), run_name,
                            _tags(dataset, cfg.tasks),
                            list(prompt_uris.values()) + list(judge_uri.values())) as run:
        params = log_run_setup(run, cfg, frame, dataset, prompts, prompt_uris, judge_params,
                               base_url=safe_url(getattr(provider, "base_url", None)),
                               cache=cache is not None)
        answers_path = run_dir(run.run_id) / "answers.jsonl"
        log.info("answers are written to %s as they arrive", answers_path)
        stats = RunStats()
        tracer = Tracer(run.run_id, run.experiment_id, cfg.model,  # one trace per call
                        {t: p.name for t, p in prompts.items()}, frame) if cfg.traces else None
        if judge is not None:  # its calls are traces of this run too (none with --no-traces)
            judge.tracer = tracer
        try:
            with AnswerLog(answers_path) as alog:
                answers = run_jobs(provider, jobs, partial(make_request, prompts=prompts,
                                                           settings=cfg.settings),
                                   alog.write, concurrency=cfg.concurrency, progress=cfg.progress,
                                   policy=cfg.retry, rpm=cfg.rpm, cache=cache,
                                   refresh=cfg.refresh, stats=stats, frame=frame.value,
                                   tracer=tracer)
        finally:
            if cache is not None:
                cache.close()
        run_metrics = {"run/requests": float(stats.requests),
                       "run/cache_hits": float(stats.cache_hits), "run/retries": float(stats.retries)}
        title = f"NOVA results: {run_name}"
        try:
            scores = _score_and_log(run, cfg, dataset, answers, frame, judge, prices, params,
                                    answers_path, title, run_metrics)
            if tracer is not None:  # after scoring; the traces exported while calls ran
                tracer.log_scores(scores, dataset.cases)
        except Exception as exc:
            if not tracking.is_unreachable(exc):
                raise
            pending = save_pending(answers_path.parent, run_id=run.run_id,
                                   tracking_uri=tracking.tracking_uri(),
                                   config=cfg.model_dump(mode="json"), title=title)
            raise TrackingUnavailable(
                f"the tracking server could not be reached; answers and run config are kept "
                f"in {pending.parent}; run `nova-mlflow sync` once it is back") from None
        log.info("\n%s", text_table(scores.metrics, f"Run {run.run_id}: {run_name}"))
        log.info("open it with: %s", tracking.run_ui_url(run))
        errors = sum(int(s.metrics.get("api_errors", 0)) for s in scores.tasks.values())
        if errors:
            raise ProviderError(f"{errors} call(s) failed after retries; the answers that did "
                                f"arrive are kept in {answers_path}")
    return RunSummary(run.run_id, run.experiment_id, {**scores.metrics, **run_metrics}, scores,
                      answers_path, dataset)


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str
    outputs: Path | None = None
    from_run: str | None = None  # re-score the answers logged by this MLflow run
    images: str | None = None
    model: str | None = None
    frame: Frame | None = None
    judge: str = "none"
    experiment: str | None = None
    run_name: str | None = None
    traces: bool = True  # an MLflow trace per judge call (the only provider calls here)


def _resolve_frame(cfg_model: str | None, explicit: Frame | None, answers: dict,
                   declared: str | None) -> Frame:
    """--frame, else the --model's catalog frame, else the frame the answers (or their run)
    declare, else our prompts' pixel frame (with a warning). Never guessed from the truth."""
    if explicit is not None or cfg_model:
        return _frame(cfg_model or "unknown", explicit)
    recorded = {a.frame for a in answers.values() if a.task is Task.localization and a.frame}
    if len(recorded) > 1:
        raise InputError(f"the answers declare several frames ({', '.join(sorted(recorded))}); "
                         "pass --frame")
    if recorded or declared:
        return Frame(recorded.pop() if recorded else declared)
    if any(k[1] is Task.localization for k in answers):
        log.warning("no --model or --frame given: reading boxes as pixel [x1, y1, x2, y2]")
    return Frame.pixel_xyxy


def evaluate_outputs(cfg: EvaluateConfig) -> RunSummary:
    """Score answers produced elsewhere (or by an earlier run); only the tasks present are scored."""
    if (cfg.outputs is None) == (cfg.from_run is None):
        raise InputError("give exactly one of --outputs FILE or --from-run RUN_ID")
    dataset = load_dataset(cfg.data, images_dir=cfg.images)
    declared: dict[str, str] = {}
    outputs = cfg.outputs
    if cfg.from_run:
        outputs, declared = tracking.answers_of_run(cfg.from_run, run_dir(f"fetch-{cfg.from_run}"))
    answers = read_answers(outputs, {c.filename for c in dataset.cases},
                           {"frame": declared.get("frame")})
    model = cfg.model or declared.get("model") or "unknown"
    frame = _resolve_frame(cfg.model, cfg.frame, answers, declared.get("frame"))
    tasks = tuple(t for t in ALL_TASKS if any(k[1] is t for k in answers))
    _check_resources(tasks)
    judge = make_judge(cfg.judge) if Task.diagnosis in tasks else None
    judge_params, judge_uri = _judge_setup(judge)
    run_name = cfg.run_name or f"evaluate {model} {outputs.name}"
    with tracking.start_run(cfg.experiment or default_experiment(dataset), run_name,
                            {**_tags(dataset, tasks), "nova.mode": "evaluate"},
                            list(judge_uri.values())) as run:
        params = _setup_params(model, frame, dataset, {}, tasks,
                               {**judge_params, "outputs_file": outputs.name,
                                "source_run": cfg.from_run or ""})
        run.params(params)
        run.dataset(cases_frame(dataset), name=dataset.name, source=dataset.source,
                    digest=dataset.digest, targets="final_diagnosis")
        if judge is not None and cfg.traces:
            judge.tracer = Tracer(run.run_id, run.experiment_id, model, {}, frame)
        scores = score(dataset.cases, answers, tasks,
                       ScoreContext(frame, cfg.judge, model, matcher=judge))
        if judge is not None:
            scores.tasks[Task.diagnosis].metrics.update(judge.metrics())
            if judge.tracer is not None:  # exported before the run closes, not at exit
                flush_traces()
        copy = run_dir(run.run_id) / "answers.jsonl"
        stamped = (a.model_copy(update={"frame": a.frame or frame.value})
                   if a.task is Task.localization else a for a in answers.values())
        copy.write_text("".join(a.model_dump_json(exclude_none=True) + "\n" for a in stamped),
                        encoding="utf-8")
        _log_results(run, scores, dataset.cases, copy, f"NOVA evaluation: {run_name}", params)
        log.info("\n%s", text_table(scores.metrics, f"Run {run.run_id}: {run_name}"))
    return RunSummary(run.run_id, run.experiment_id, scores.metrics, scores, copy, dataset)


def metrics_json(summary: RunSummary) -> str:
    return json.dumps(summary.metrics, sort_keys=True)



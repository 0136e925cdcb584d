"""One benchmark run end to end: data -> prompts -> provider -> answers -> scores -> MLflow.

Checks happen before the MLflow run opens (pipeline.setup); answers are on disk before they
are scored; a run that fails is marked FAILED by tracking.start_run; a tracking server that
goes away at the end leaves the results on disk for `sync` (pipeline.pending).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial

from nova_mlflow import tracking
from nova_mlflow.calls.jobs import Job, ModelCalls, run_jobs
from nova_mlflow.calls.runner import CallSession
from nova_mlflow.calls.store import CallStore
from nova_mlflow.config import RunConfig
from nova_mlflow.data import Dataset, load_dataset
from nova_mlflow.data.answers import AnswerLog
from nova_mlflow.data.images import read_bytes
from nova_mlflow.errors import ProviderError
from nova_mlflow.paths import cache_dir, run_dir
from nova_mlflow.pipeline import setup
from nova_mlflow.pipeline.pending import TrackingUnavailable, save_pending
from nova_mlflow.pipeline.results import Header, RunSummary, Scoring, log_results, score_answers
from nova_mlflow.pricing import load_prices, warn_if_unknown
from nova_mlflow.prompts import Prompt, render_case
from nova_mlflow.providers import create_provider
from nova_mlflow.providers.base import Request
from nova_mlflow.report import text_table
from nova_mlflow.schemas import Frame, GenerationSettings, Task
from nova_mlflow.scoring import ScoreContext
from nova_mlflow.secrets import safe_url
from nova_mlflow.tracking.traces import Tracer

log = logging.getLogger("nova_mlflow")
IMAGE_TASKS = (Task.localization, Task.captioning)


def make_request(job: Job, prompts: dict[Task, Prompt], settings: GenerationSettings,
                 image_hashes: Mapping[str, str] | None = None) -> Request:
    """What the model is sent for one job: the rendered prompt, and the PNG for image tasks
    (with its sha256 from `image_hashes`, the dataset's, when it is there)."""
    c, prompt = job.case, prompts[job.task]
    image = read_bytes(c.image_path) if job.task in IMAGE_TASKS else None
    known = (image_hashes or {}).get(c.filename) if image is not None else None
    text = render_case(prompt, width=c.image_width, height=c.image_height,
                       clinical_history=c.clinical_history, caption=c.caption)
    return Request(task=job.task, filename=c.filename, case_id=c.case_id, prompt=text,
                   prompt_version=prompt.version, image_png=image,
                   image_sha256=known,
                   image_size=(c.image_width, c.image_height) if image is not None else None,
                   settings=settings)


def log_run_setup(run: tracking.RunLogger, cfg: RunConfig, frame: Frame, dataset: Dataset,
                  prompts: dict[Task, Prompt], extra: dict) -> dict:
    """What a run logs before its first call: params, the dataset input, the run config.

    `extra`: params known only here (judge, prompt URIs, base URL, cache mode). Returns the
    params (the HTML report shows them). The logging benchmark calls this too, so it times
    what a run does.
    """
    params = setup.setup_params(cfg.model, frame, dataset, prompts, cfg.tasks, {
        "temperature": cfg.settings.temperature, "max_tokens": cfg.settings.max_tokens,
        "seed": cfg.settings.seed, "concurrency": cfg.concurrency, "limit": cfg.limit,
        "max_retries": cfg.retry.max_retries, "timeout_s": cfg.retry.timeout, "rpm": cfg.rpm,
        "prices_as_of": load_prices(cfg.prices).as_of, **setup.images_param(cfg.images), **extra})
    run.params(params)
    setup.log_dataset(run, dataset)
    run.dict(cfg.model_dump(mode="json"), "config/run_config.json")
    return params


def run(cfg: RunConfig, dataset: Dataset | None = None) -> RunSummary:
    """One run; `dataset` may be passed in already loaded (a sweep loads it once)."""
    frame, prompts = setup.check_config(cfg)
    prices = load_prices(cfg.prices)
    judge = setup.make_judge(cfg.judge, cfg.concurrency, cfg.retry)
    warn_if_unknown(cfg.model, prices)  # before any call: the cost will not be logged
    if judge is not None:
        warn_if_unknown(judge.model, prices, "judge")
    if dataset is None:
        dataset = load_dataset(cfg.data, images_dir=cfg.images)
    # the baseline's retrieval corpus is the whole dataset, whatever --limit says
    provider = create_provider(cfg.model, cases=dataset.cases, base_url=cfg.base_url,
                               api_key_env=cfg.api_key_env, timeout=cfg.retry.timeout)
    dataset = dataset.limited(cfg.limit)
    store = CallStore.in_dir(cache_dir()) if cfg.use_cache else None
    jobs = [Job(c, t) for t in cfg.tasks for c in dataset.cases]
    versions = "+".join(f"{t.value[:3]}-{p.version}" for t, p in prompts.items())
    run_name = cfg.run_name or f"{cfg.model} {versions}"
    prompt_uris = setup.register_prompts(prompts)
    judge_params, judge_uri = setup.judge_setup(judge)
    with tracking.start_run(cfg.experiment or setup.default_experiment(dataset), run_name,
                            setup.run_tags(dataset, cfg.tasks),
                            list(prompt_uris.values()) + list(judge_uri.values())) as mlrun:
        params = log_run_setup(mlrun, cfg, frame, dataset, prompts, {
            **judge_params, "base_url": safe_url(getattr(provider, "base_url", None)),
            "cache": "refresh" if cfg.refresh else ("on" if store is not None else "off"),
            **({"api_key_env": cfg.api_key_env} if cfg.api_key_env else {}),  # a name only
            **{f"prompt.{t.value}.uri": uri for t, uri in prompt_uris.items()}})
        answers_path = run_dir(mlrun.run_id) / "answers.jsonl"
        log.info("answers are written to %s as they arrive", answers_path)
        session = CallSession(provider, cfg.call_options())
        tracer = Tracer(mlrun.run_id, mlrun.experiment_id, cfg.model,  # one trace per call
                        {t: p.name for t, p in prompts.items()}, frame) if cfg.traces else None
        if judge is not None:  # its calls are traces of this run too (none with --no-traces)
            judge.tracer = tracer
        try:
            with AnswerLog(answers_path) as alog:
                calls = ModelCalls(session, partial(make_request, prompts=prompts,
                                                    settings=cfg.settings,
                                                    image_hashes=dataset.image_hashes),
                                   alog.write, store, frame.value, tracer)
                answers = run_jobs(calls, jobs)
        finally:
            if store is not None:
                store.close()
        stats = session.stats
        run_metrics = {"run/requests": float(stats.requests),
                       "run/cache_hits": float(stats.cache_hits), "run/retries": float(stats.retries)}
        title = f"NOVA results: {run_name}"
        try:
            scores = score_answers(Scoring(dataset.cases, cfg.tasks,
                                           ScoreContext(frame, cfg.judge, cfg.model, matcher=judge),
                                           prices, use_memo=cfg.use_cache),
                                   {(a.filename, a.task): a for a in answers})
            log_results(mlrun, scores, dataset.cases, answers_path, Header(title, params),
                        run_metrics)
            if tracer is not None:  # after scoring; the traces exported while calls ran
                tracer.log_scores(scores, dataset.cases)
        except Exception as exc:
            if not tracking.is_unreachable(exc):
                raise
            pending = save_pending(answers_path.parent, run_id=mlrun.run_id,
                                   tracking_uri=tracking.tracking_uri(),
                                   config=cfg.model_dump(mode="json"), title=title)
            raise TrackingUnavailable(
                f"the tracking server could not be reached; answers and run config are kept "
                f"in {pending.parent}; run `nova-mlflow sync` once it is back") from None
        log.info("\n%s", text_table(scores.metrics, f"Run {mlrun.run_id}: {run_name}"))
        log.info("open it with: %s", tracking.run_ui_url(mlrun))
        errors = sum(int(s.metrics.get("api_errors", 0)) for s in scores.tasks.values())
        if errors:
            raise ProviderError(f"{errors} call(s) failed after retries; the answers that did "
                                f"arrive are kept in {answers_path}")
    return RunSummary(mlrun.run_id, mlrun.experiment_id, {**scores.metrics, **run_metrics},
                      scores, answers_path, dataset)

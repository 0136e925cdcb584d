"""`nova-mlflow` command line: a thin shell over the library (the only module importing click).
Logs go to stderr; with --json, stdout carries exactly one JSON object. Exit codes: 0 ok,
1 gate rejected, 2 bad input (one line naming file, row, field), 3 provider failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

import click

from nova_mlflow import __version__
from nova_mlflow.errors import InputError, NovaError
from nova_mlflow.names import Frame, Task

TASK_NAMES = [t.value for t in Task]


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("nova-mlflow: %(message)s"))
    root = logging.getLogger("nova_mlflow")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


class WholeNumber(click.ParamType):
    """An integer that also accepts "8.0" (MLproject passes counts declared as float)."""

    name = "integer"

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value, param, ctx):  # noqa: ANN001 (click's signature)
        try:
            f = float(value)
            n = int(f)
        except (TypeError, ValueError, OverflowError):
            n, f = 0, 0.5  # not a number: fails below
        if f != n:
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if (self.low is not None and n < self.low) or (self.high is not None and n > self.high):
            self.fail(f"{n} is not in the range {self.low}..{self.high}", param, ctx)
        return n


def _fail(exc: Exception, code: int) -> None:
    click.echo(f"nova-mlflow: error: {exc}", err=True)
    sys.exit(code)


def _call(fn, *args, **kwargs):
    """Run a library call and map its errors to the documented exit codes.

    Anything a library prints (MLflow prints "View run ... at ..." for server runs) goes to
    stderr: stdout is reserved for the one --json object.
    """
    from pydantic import ValidationError  # here, not at import: `--help` stays light

    try:
        with contextlib.redirect_stdout(sys.stderr):
            return fn(*args, **kwargs)
    except NovaError as exc:
        _fail(exc, exc.exit_code)
    except ValidationError as exc:  # a bad flag value caught by a config model
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        _fail(InputError(f"--{field.replace('_', '-')}: {err['msg']}"), 2)
    except Exception as exc:
        # the tracking server refusing us (401/403, unknown experiment, ...): one line, exit 2
        if type(exc).__name__ not in ("MlflowException", "RestException"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        _fail(InputError(f"MLflow: {first} (check MLFLOW_TRACKING_URI and credentials)"), 2)


def _emit_json(metrics: dict) -> None:
    sys.stdout.write(json.dumps(metrics, sort_keys=True) + "\n")
    sys.stdout.flush()


data_option = click.option(
    "--data", default="demo", show_default=True,
    help="'demo' (bundled offline set), a directory or file in a NOVA layout "
         "(metadata CSV or parquet release, images beside it or in images/), or hf://c-i-ber/Nova.")
images_option = click.option("--images", type=click.Path(file_okay=False, path_type=Path),
                             default=None, help="Image directory, if not beside the metadata.")


def json_flag(what: str = "the metrics"):
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as one JSON object on stdout.")


json_option = json_flag()
frame_option = click.option(
    "--frame", type=click.Choice([f.value for f in Frame]), default=None,
    help="Box coordinate frame of the model's answers; needed for models not in the catalog.")
experiment_option = click.option("--experiment", default=None,
                                 help="MLflow experiment name [default: nova-<dataset>].")
run_name_option = click.option("--run-name", default=None,
                               help="MLflow run name [default: model and prompt versions].")
judge_option = click.option("--judge", default="none", show_default=True,
                            help="Diagnosis matching: an LLM judge model, or 'none' for the "
                                 "offline matcher.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nova-mlflow")
@click.option("-v", "--verbose", is_flag=True, help="More detail on stderr.")
def main(verbose: bool) -> None:
    """Benchmark vision-language models on NOVA (brain MRI) and track every run in MLflow.

    \b
    Quick start (offline, no key):   nova-mlflow run
    Then look at it:                 mlflow ui --backend-store-uri sqlite:///mlflow.db
    """
    _setup_logging(verbose)


MODEL_HELP = ("'baseline' (offline); an OpenAI model (gpt-4o, ...); a Gemini model "
              "(gemini-2.0-flash, ...); openai-compatible:NAME (vLLM, SGLang, Ollama; with "
              "--base-url); replay:FILE.jsonl (stored answers; with --frame).")


def run_options(fn):
    """The flags `run` and `sweep` share (everything but --model and --prompt)."""
    options = [
        data_option, images_option, frame_option,
        click.option("--tasks", default=",".join(TASK_NAMES), show_default=True,
                     help="Comma-separated tasks to run."),
        click.option("--limit", type=WholeNumber(0), default=0, show_default=True,
                     help="Only the first N cases (sorted by filename); 0 = all."),
        click.option("--concurrency", type=WholeNumber(1, 512), default=8, show_default=True,
                     help="Model calls in flight at once."),
        click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True),
        click.option("--max-tokens", type=WholeNumber(1, 32768), default=1024, show_default=True),
        click.option("--seed", type=WholeNumber(), default=0, show_default=True,
                     help="Sampling seed, where the provider supports one."),
        judge_option, experiment_option, run_name_option,
        click.option("--base-url", default=None,
                     help="Provider endpoint [default: OPENAI_BASE_URL / GOOGLE_GEMINI_BASE_URL "
                          "/ the vendor's]."),
        click.option("--api-key-env", default=None, metavar="NAME",
                     help="Environment variable holding the API key [default: OPENAI_API_KEY "
                          "for openai, GEMINI_API_KEY / GOOGLE_API_KEY for gemini, "
                          "OPENAI_COMPATIBLE_API_KEY for openai-compatible (no key sent when "
                          "unset; never OPENAI_API_KEY)]."),
        click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="At most this many requests per minute (spaced evenly)."),
        click.option("--max-retries", type=WholeNumber(0, 50), default=6, show_default=True,
                     help="Retries per call on 429/5xx/timeouts (backoff, jitter, Retry-After)."),
        click.option("--retry-base", type=click.FloatRange(min=0), default=1.0, show_default=True,
                     help="First backoff in seconds; doubles each retry."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0,
                     show_default=True, help="Seconds per attempt."),
        click.option("--no-cache", is_flag=True, help="Use no response cache and no score memo."),
        click.option("--refresh", is_flag=True,
                     help="Ask the model again and overwrite cached answers."),
        click.option("--prices", type=click.Path(dir_okay=False), default=None,
                     help="JSON price table (USD per million tokens) overriding the built-in one."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
        click.option("--no-traces", is_flag=True,
                     help="No MLflow trace per call (for very large sweeps; see BENCHMARKS.md)."),
        json_option,
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@main.command()
@click.option("--model", default="baseline", show_default=True, help=MODEL_HELP)
@click.option("--prompt", "prompts", multiple=True, metavar="TASK=VERSION",
              help="Prompt version per task, e.g. --prompt diagnosis=v2 (repeat, or "
                   "comma-separate; default v1).")
@run_options
def run(model, prompts, as_json, **o) -> None:
    """Run a model on NOVA's tasks and log one MLflow run."""
    from nova_mlflow import api

    summary = _call(api.run, model=model, prompt=prompts, **o)
    if as_json:
        _emit_json(summary.metrics)


@main.command()
@click.option("--model", "models", multiple=True, required=True, help="Repeat for each model. "
              + MODEL_HELP)
@click.option("--prompt", "prompts", multiple=True, metavar="TASK=VERSION",
              help="Repeat to sweep versions: --prompt diagnosis=v1 --prompt diagnosis=v2 "
                   "runs both (tasks without a flag use v1).")
@run_options
def sweep(models, prompts, as_json, **o) -> None:
    """One parent run and one child run per model x prompt-version combination."""
    from nova_mlflow import api

    summary = _call(api.sweep, model=models, prompt=prompts, **o)
    if as_json:
        _emit_json({"parent_run_id": summary.parent_run_id,
                    "children": {c.run_id: c.metrics for c in summary.children}})


@main.command()
@data_option
@images_option
@click.option("--outputs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='JSONL, one {"filename", "task", "text"} object per line; text is the raw '
                   'answer, or null for no answer (counted as missing). Extra fields are kept.')
@click.option("--from-run", default=None, metavar="RUN_ID",
              help="Re-score the answers an earlier MLflow run logged (older schemas are "
                   "upgraded; its model and frame are reused unless given).")
@click.option("--model", default=None,
              help="Model that wrote the answers; fixes the box coordinate frame.")
@frame_option
@judge_option
@experiment_option
@run_name_option
@click.option("--no-traces", is_flag=True,
              help="No MLflow trace per judge call (the only provider calls of an evaluation).")
@json_option
def evaluate(as_json, **o) -> None:
    """Score answers produced elsewhere (no model call) and log one MLflow run."""
    from nova_mlflow import api

    summary = _call(api.evaluate, **o)
    if as_json:
        _emit_json(summary.metrics)


@main.command()
@data_option
@images_option
@click.option("--no-images", is_flag=True, help="Check the metadata only; do not open images.")
@json_option
def validate(data, images, no_images, as_json) -> None:
    """Check a dataset; exit 2 with a one-line error on the first bad row."""
    from nova_mlflow import api

    facts = _call(api.validate, data=data, images=images, no_images=no_images)
    source = facts.pop("source")
    if as_json:
        _emit_json(facts)
    else:
        click.echo(f"ok: {source}: {facts['cases']} cases, {facts['case_ids']} case ids, "
                   f"{facts['final_diagnoses']} final diagnoses, {facts['gold_boxes']} gold boxes "
                   f"({facts['layout']} layout, digest {facts['digest']})")


STATS_HELP = ("Resampling unit: the patient case (case_id); the same draws for every run. "
              "p: t test on the paired cluster-robust SE, adjusted over every metric x run test.")

resamples_option = click.option("--resamples", type=WholeNumber(100, 100_000), default=2000,
                                show_default=True, help="Bootstrap resamples (draws of whole cases).")
seed_option = click.option("--seed", type=WholeNumber(), default=None,
                           help="Bootstrap seed [default: the package's fixed seed].")


def adjust_option(scope: str):
    return click.option("--adjust", type=click.Choice(["holm", "bh", "none"]), default="holm",
                        show_default=True, help=f"Adjust p over {scope}: Holm (family-wise), "
                        "Benjamini-Hochberg (false discovery rate) or none.")


def mismatch_option(what: str):
    return click.option("--allow-mismatch", is_flag=True, help=(
        f"{what} on different dataset digests, diagnosis scorers or schema / metric-definition "
        "versions anyway (what differed is printed and logged)."))


@main.command(epilog=STATS_HELP)
@click.option("--experiment", default=None,
              help="Compare the finished runs of this experiment (sweep parents and compare "
                   "runs left out) [default: nova-demo, unless --run is given].")
@click.option("--run", "runs", multiple=True, metavar="ID",
              help="A run to compare (repeat); replaces the experiment's runs.")
@click.option("--baseline", default=None, metavar="ID",
              help="Run the others are compared with [default: the first --run, or the oldest].")
@click.option("--metric", "metrics", multiple=True, metavar="KEY",
              help="Metric to compare (repeat or comma-separate) [default: every Table 1-3 "
                   "metric the runs' tables allow].")
@adjust_option("all metric x run tests")
@mismatch_option("Compare runs")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True,
              help="Level of the minimum detectable difference (80% power) and of the filled "
                   "markers of the forest plot.")
@resamples_option
@seed_option
@click.option("--p-method", type=click.Choice(["wald", "bootstrap"]), default="wald",
              show_default=True,
              help="wald: t test on the paired cluster-robust SE (not floored); bootstrap: the "
                   "percentile-bootstrap p, at least 1/resamples.")
@click.option("--no-log", is_flag=True, help="Print only; log no comparison run.")
@json_option
def compare(experiment, runs, baseline, metrics, adjust, allow_mismatch, alpha, resamples, seed,
            p_method, no_log, as_json) -> None:
    """Runs side by side: per metric, value, 95% CI, SE, paired delta vs a baseline run with
    its CI, p, adjusted p and the minimum detectable difference."""
    from nova_mlflow import api

    res = _call(api.compare, experiment=experiment, run=runs, baseline=baseline, metric=metrics,
                adjust=adjust, allow_mismatch=allow_mismatch, alpha=alpha, resamples=resamples,
                seed=seed, p_method=p_method, no_log=no_log)
    if as_json:
        _emit_json(res.to_json())


@main.command(epilog=STATS_HELP)
@click.option("--run", "run_id", required=True, metavar="ID", help="The run to register.")
@click.option("--registered-model", required=True, metavar="NAME",
              help="Registered model that gets the new version (aliases challenger/champion).")
@click.option("--metric", "metrics", multiple=True, metavar="KEY",
              help="Metric that must improve (repeat or comma-separate; all must pass) "
                   "[default: localization/mAP30, else diagnosis/top1, else captioning/meteor].")
@click.option("--min-delta", type=click.FloatRange(0), default=0.0, show_default=True,
              help="The lower 95% CI bound of the gain must exceed this (a fraction: 0.02 = 2 "
                   "percentage points; counts for TP30/FP30).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="The gain's adjusted p must be below this.")
@click.option("--dry-run", is_flag=True, help="Decide and print; register and tag nothing.")
@adjust_option("the gated metrics")
@mismatch_option("Gate against a champion")
@resamples_option
@seed_option
@json_option
def gate(run_id, registered_model, metrics, min_delta, alpha, dry_run, adjust, allow_mismatch,
         resamples, seed, as_json) -> None:
    """Register a run's configuration; promote it to `champion` only on a real gain (exit 1 if not)."""
    from nova_mlflow import api

    result = _call(api.gate, run=run_id, registered_model=registered_model, metric=metrics,
                   min_delta=min_delta, alpha=alpha, dry_run=dry_run, adjust=adjust,
                   allow_mismatch=allow_mismatch, resamples=resamples,
                   seed=seed)  # the reason goes to stderr as a log line
    if as_json:
        _emit_json(result.as_json())
    sys.exit(0 if result.promoted else 1)


@main.group()
def cache() -> None:
    """The response cache: model answers and judge verdicts kept so no call is paid twice.

    In <cache>/responses.sqlite ($NOVA_MLFLOW_CACHE, else the user cache), keyed by provider,
    model, endpoint, prompt, settings and input; METEOR/BLEU values in scores.sqlite."""


@cache.command("stats")
@json_flag("the result")
def cache_stats(as_json) -> None:
    """Entries per provider, model, endpoint (answers) and judge (verdicts); memo size."""
    from nova_mlflow import api
    from nova_mlflow.pipeline.cache import stats_table

    stats = _call(api.cache_stats)
    if as_json:
        _emit_json(stats)
    else:
        click.echo(stats_table(stats))


@cache.command("prune")
@click.option("--older-than", type=click.FloatRange(min=0), required=True, metavar="DAYS",
              help="Remove entries stored more than DAYS days ago (0 empties the cache).")
@json_flag("the result")
def cache_prune(older_than, as_json) -> None:
    """Remove old entries (answers and verdicts) and give the space back."""
    from nova_mlflow import api

    done = _call(api.cache_prune, older_than=older_than)
    if as_json:
        _emit_json(done)
    else:
        r = done["removed"]
        click.echo(f"removed {r['responses']} answer(s), {r['verdicts']} verdict(s) and {r['scores']}"
                   f" memoised METEOR/BLEU value(s) older than {older_than:g} day(s) from {done['path']}")


@main.command()
@json_flag("the synced run ids")
def sync(as_json) -> None:
    """Log runs whose tracking server was unreachable at the end (results kept on disk)."""
    from nova_mlflow import api
    from nova_mlflow.pipeline.pending import pending_runs

    if not pending_runs():
        click.echo("nothing to sync", err=True)
    done = _call(api.sync)
    if as_json:
        _emit_json({"synced": done})
    elif done:
        click.echo(f"synced {len(done)} run(s): {', '.join(done)}", err=True)

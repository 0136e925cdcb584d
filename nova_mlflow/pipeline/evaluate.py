"""`evaluate`: score answers produced elsewhere (a file, or an earlier run) and log one run.

Only the tasks present in the answers are scored; no model is called (an LLM judge may be).
"""

from __future__ import annotations

import logging

from nova_mlflow import tracking
from nova_mlflow.config import EvaluateConfig
from nova_mlflow.data import load_dataset
from nova_mlflow.data.answers import answer_line, read_answers
from nova_mlflow.errors import InputError
from nova_mlflow.paths import run_dir
from nova_mlflow.pipeline import setup
from nova_mlflow.pipeline.results import Header, RunSummary, Scoring, log_results, score_answers
from nova_mlflow.pricing import load_prices, warn_if_unknown
from nova_mlflow.report import text_table
from nova_mlflow.schemas import ALL_TASKS, Answer, Frame, Task
from nova_mlflow.scoring import ScoreContext
from nova_mlflow.tracking.traces import Tracer
from nova_mlflow.tracking.assessments import flush as flush_traces

log = logging.getLogger("nova_mlflow")


def resolve_frame(cfg_model: str | None, explicit: Frame | None,
                  answers: dict[tuple[str, Task], Answer], declared: str | None) -> Frame:
    """--frame, else the --model's catalog frame, else the frame the answers (or their run)
    declare, else our prompts' pixel frame (with a warning). Never guessed from the truth."""
    if explicit is not None or cfg_model:
        return setup.model_frame(cfg_model or "unknown", explicit)
    recorded = {a.frame for a in answers.values() if a.task is Task.localization and a.frame}
    if len(recorded) > 1:
        raise InputError(f"the answers declare several frames ({', '.join(sorted(recorded))}); "
                         "pass --frame")
    if recorded or declared:
        return Frame(recorded.pop() if recorded else declared)
    if any(k[1] is Task.localization for k in answers):
        log.warning("no --model or --frame given: reading boxes as pixel [x1, y1, x2, y2]")
    return Frame.pixel_xyxy


def evaluate(cfg: EvaluateConfig) -> RunSummary:
    """Score answers produced elsewhere (or by an earlier run); only the tasks present are scored."""
    if (cfg.outputs is None) == (cfg.from_run is None):
        raise InputError("give exactly one of --outputs FILE or --from-run RUN_ID")
    dataset = load_dataset(cfg.data, images_dir=cfg.images)
    declared: dict[str, str] = {}
    outputs = cfg.outputs
    if cfg.from_run:
        outputs, declared = tracking.answers_of_run(cfg.from_run, run_dir(f"fetch-{cfg.from_run}"))
    assert outputs is not None
    answers = read_answers(outputs, {c.filename for c in dataset.cases},
                           {"frame": declared.get("frame")})
    model = cfg.model or declared.get("model") or "unknown"
    frame = resolve_frame(cfg.model, cfg.frame, answers, declared.get("frame"))
    tasks = tuple(t for t in ALL_TASKS if any(k[1] is t for k in answers))
    setup.check_resources(tasks)
    judge = setup.make_judge(cfg.judge) if Task.diagnosis in tasks else None
    if judge is not None:
        warn_if_unknown(judge.model, load_prices(), "judge")
    judge_params, judge_uri = setup.judge_setup(judge)
    run_name = cfg.run_name or f"evaluate {model} {outputs.name}"
    with tracking.start_run(cfg.experiment or setup.default_experiment(dataset), run_name,
                            {**setup.run_tags(dataset, tasks), "nova.mode": "evaluate"},
                            list(judge_uri.values())) as run:
        params = setup.setup_params(model, frame, dataset, {}, tasks,
                                    {**judge_params, "outputs_file": outputs.name,
                                     "source_run": cfg.from_run or "",
                                     **setup.images_param(cfg.images)})
        run.params(params)
        setup.log_dataset(run, dataset)
        if judge is not None and cfg.traces:
            judge.tracer = Tracer(run.run_id, run.experiment_id, model, {}, frame)
        scores = score_answers(Scoring(dataset.cases, tasks,
                                       ScoreContext(frame, cfg.judge, model, matcher=judge)),
                               answers)
        if judge is not None and judge.tracer is not None:
            flush_traces()  # exported before the run closes, not at exit
        copy = run_dir(run.run_id) / "answers.jsonl"
        stamped = (a.model_copy(update={"frame": a.frame or frame.value})
                   if a.task is Task.localization else a for a in answers.values())
        copy.write_text("".join(answer_line(a) + "\n" for a in stamped), encoding="utf-8")
        log_results(run, scores, dataset.cases, copy,
                    Header(f"NOVA evaluation: {run_name}", params))
        log.info("\n%s", text_table(scores.metrics, f"Run {run.run_id}: {run_name}"))
    return RunSummary(run.run_id, run.experiment_id, scores.metrics, scores, copy, dataset)

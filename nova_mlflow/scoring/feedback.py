"""A case's per-case row -> expectations and feedback (pure; tracking/ logs them).

Why one module: a benchmark run logs, onto each case's trace, feedback read from the rows of
its per-case tables; a team using `mlflow.genai.evaluate` (tracking/scorers.py) gets the same
feedback names, values and rationales for one answer, from a row built by the same
`case_row` functions. Both go through `feedback_for(task, row)`.

Expectations (ground truth, one key per task): `gold_boxes` (pixel [x1, y1, x2, y2] of the
original image), `expert_caption`, `final_diagnosis`. Scorer `outputs` may be the raw answer
text or a dict with "text" (and "frame" for boxes in a model's own frame); the image size is
read from `inputs["image"]` when given, else 480 x 480.

Per-case BLEU is not offered: unsmoothed sentence BLEU on one short caption is ~0 almost
always; BLEU stays the corpus figure of the run (captioning/bleu).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nova_mlflow.schemas import Frame
from nova_mlflow.metrics.matching import Matcher, OfflineMatcher
from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.metrics.language import words
from nova_mlflow.parsing import parse_answer
from nova_mlflow.schemas import Box, Case, LocalizationPrediction, Parsed, Task
from nova_mlflow.scoring import captioning, diagnosis, localization

K = 5
DEFAULT_SIZE = (480, 480)

#: Feedback names per task (the columns of the Evaluation runs view).
FEEDBACK_NAMES: dict[Task, tuple[str, ...]] = {
    Task.localization: ("best_iou", "hit_iou30", "hit_iou50", "ap30"),
    Task.captioning: ("clinical_keyword_f1", "modality_keyword_f1", "meteor",
                      "normal_abnormal_correct"),
    Task.diagnosis: ("top1", "top5", "diagnosis_rank"),
}
STATUS_FEEDBACK = "answer_status"

#: feedback name -> (value, rationale or None)
FeedbackMap = Mapping[str, tuple[Any, str | None]]


# --- ground truth -----------------------------------------------------------------------------

def expectations_for(case: Case, task: Task) -> dict[str, Any]:
    """The case's ground truth for one task, as expectation name -> value."""
    if task is Task.localization:
        return {"gold_boxes": [[round(v, 1) for v in b.as_list()] for b in case.gold_boxes]}
    if task is Task.captioning:
        return {"expert_caption": case.caption} if words(case.caption) else {}
    return {"final_diagnosis": case.final_diagnosis}


# --- one case's row from its raw answer (what the GenAI scorers score) -------------------------
# The same row builders as the per-case tables (scoring/<task>.case_row), so a scorer and a
# run give the same feedback for the same answer.

def _status(p: Parsed) -> dict[str, Any]:
    return {"status": "answered" if p.ok else "parse_failure", "error": p.error or ""}


def localization_row(text: str | None, gold: Sequence[Box], frame: Frame = Frame.pixel_xyxy,
                     size: tuple[int, int] = DEFAULT_SIZE) -> dict[str, Any]:
    p = parse_answer(Task.localization, text, frame=frame, sent=size, original=size)
    pred = p.prediction if isinstance(p.prediction, LocalizationPrediction) else None
    return {**_status(p), **localization.case_row(pred, list(gold))}


def caption_row(text: str | None, caption: str) -> dict[str, Any]:
    from nova_mlflow.wordnet import wordnet

    p = parse_answer(Task.captioning, text)
    pred = p.prediction.text if p.ok else ""  # type: ignore[union-attr]
    meteor = cap.meteor_scores([words(caption)], [words(pred)], wordnet())[0]
    return {**_status(p), **captioning.case_row(caption, pred, meteor)}


def diagnosis_row(text: str | None, truth: str, matcher: Matcher | None = None) -> dict[str, Any]:
    p = parse_answer(Task.diagnosis, text)
    preds = list(p.prediction.diagnoses)[:K] if p.ok else []  # type: ignore[union-attr]
    verdicts = (matcher or OfflineMatcher()).match_many([(d, truth) for d in preds])
    rank = dx.first_match_rank([v.match for v in verdicts])
    return {**_status(p), **diagnosis.case_row(preds, verdicts, truth, rank)}


# --- row -> feedback ------------------------------------------------------------------------

def _num(v: Any) -> float | None:
    """A finite float, or None for a blank cell (NaN/None/"")."""
    if v is None or v == "":
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _problem(row: Mapping[str, Any]) -> str:
    status = str(row.get("status") or "answered")
    return "" if status == "answered" else f"{status}: {row.get('error') or ''}".strip(": ") + "; "


def feedback_for(task: Task, row: Mapping[str, Any]) -> dict[str, tuple[Any, str | None]]:
    """Feedback name -> (value, rationale) for one case's row of its task's per-case table."""
    fb: dict[str, tuple[Any, str | None]] = {STATUS_FEEDBACK: (str(row.get("status") or "answered"),
                                                               row.get("error") or None)}
    why = _problem(row)
    if task is Task.localization:
        iou = _num(row.get("best_iou")) or 0.0
        excl = _num(row.get("best_iou_excl"))
        hit = iou if excl is None else excl  # the authors' hit rate (c) when the row has it
        boxes = f"predicted {row.get('pred_boxes', '[]')} vs gold {row.get('gold_boxes', '[]')}"
        det = (f"{int(row.get('detected30') or 0)}/{int(row.get('n_gold') or 0)} gold boxes "
               f"found at IoU 0.3, {int(row.get('false_positives30') or 0)} false positives")
        fb["best_iou"] = (round(iou, 4), why + boxes)
        fb["hit_iou30"] = (hit >= 0.3, why + f"best IoU {hit:.3f} (exclusive sizes, any pair)")
        fb["hit_iou50"] = (hit >= 0.5, why + f"best IoU {hit:.3f} (exclusive sizes, any pair)")
        fb["ap30"] = (round(_num(row.get("ap30")) or 0.0, 4), why + det)
    elif task is Task.captioning:
        for kind in ("clinical", "modality"):
            f1 = _num(row.get(f"{kind}_f1"))
            if f1 is not None:
                fb[f"{kind}_keyword_f1"] = (round(f1, 4), why + (
                    f"hits: {row.get(f'{kind}_hits') or '-'} | missed: "
                    f"{row.get(f'{kind}_missed') or '-'} | extra: {row.get(f'{kind}_extra') or '-'}"))
        meteor = _num(row.get("meteor"))
        if meteor is not None:
            fb["meteor"] = (round(meteor, 4), why or None)
        if row.get("gt_binary"):
            fb["normal_abnormal_correct"] = (bool(row.get("binary_correct")), why + (
                f"expert: {row.get('gt_binary')}, answer: {row.get('pred_binary') or 'not stated'}"))
    else:
        rank = int(_num(row.get("rank")) or 0)
        preds = [(j, row.get(f"pred{j}") or "", row.get(f"reason{j}") or "")
                 for j in range(1, K + 1) if row.get(f"pred{j}")]
        first = f"#1 {preds[0][1]!r}: {preds[0][2]}" if preds else "no diagnosis given"
        if rank:
            hit = preds[rank - 1] if rank <= len(preds) else (rank, "", "")
            top5_why = f"#{rank} {hit[1]!r}: {hit[2]}"
        else:
            top5_why = f"none of {len(preds)} matched {row.get('truth', '')!r}; " + first
        fb["top1"] = (rank == 1, why + first)
        fb["top5"] = (0 < rank <= K, why + top5_why)
        fb["diagnosis_rank"] = (rank, why + "position of the first matching diagnosis; 0 = none")
    return fb

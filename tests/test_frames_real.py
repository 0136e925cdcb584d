"""Must-show of issue 3: every model frame round-trips on the real NOVA metadata.

The 1068 gold boxes of the 906 real cases are written in each model family's own frame,
by this file's own conversions from the families' documented conventions (not by the
package's frames.from_pixels, which would test the package against itself), as the text
that family emits, and scored through the real path (parsing -> frames.to_pixels -> NOVA
and COCO protocols). A frame that is read wrong (x/y swapped, 0-1000 taken as pixels, 476
vs 480) cannot score 1.0.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.parsing.frames import frame_for
from nova_mlflow.schemas import Answer, Box, Case, Task
from nova_mlflow.scoring import ScoreContext, score

ONE = ["mAP30", "mAP50", "mAP50_95", "ACC50", "coco_mAP30", "coco_mAP50", "coco_mAP50_95",
       "precision30", "recall30", "f1_30", "precision50", "recall50", "f1_50"]
FINE = {"mAP50_95", "coco_mAP50_95"}  # the only ones that see sub-pixel rounding (IoU >= 0.95)


def _num(v: float, decimals: int | None) -> str:
    return str(round(v)) if decimals is None else f"{v:.{decimals}f}"


def gemini(quads, d):  # box_2d = [ymin, xmin, ymax, xmax] on 0-1000, fenced JSON with a label
    items = ", ".join(f'{{"box_2d": [{", ".join(_num(v, d) for v in q)}], "label": "lesion"}}'
                      for q in quads)
    return f"```json\n[{items}]\n```"


def qwen_json(quads, d):  # Qwen2.5-VL JSON: bbox_2d = [x1, y1, x2, y2]
    items = ", ".join(f'{{"bbox_2d": [{", ".join(_num(v, d) for v in q)}], "label": "abnormality"}}'
                      for q in quads)
    return f"```json\n[{items}]\n```"


def qwen_tokens(quads, d):  # Qwen2-VL / Qwen2.5-VL grounding tokens
    return "".join("<|object_ref_start|>lesion<|object_ref_end|>"
                   f"<|box_start|>({_num(a, d)},{_num(b, d)}),({_num(c, d)},{_num(e, d)})<|box_end|>"
                   for a, b, c, e in quads)


def pixel_list(quads, d):  # our prompts: a list of [x1, y1, x2, y2] in pixels of the image sent
    return "[" + ", ".join("[" + ", ".join(_num(v, d) for v in q) + "]" for q in quads) + "]"


NOVA_SIDE = 480  # every NOVA slice is 480 x 480 (checked in real_cases)
QWEN25_SIDE = 476  # Qwen2.5-VL's processor resizes to multiples of 28: round(480 / 28) * 28


def gemini_box(b: Box) -> list[float]:
    """Gemini 2.x box_2d: [ymin, xmin, ymax, xmax], each on 0-1000 of the image's side."""
    k = 1000 / NOVA_SIDE
    return [b.y1 * k, b.x1 * k, b.y2 * k, b.x2 * k]


def qwen2_box(b: Box) -> list[float]:
    """Qwen2-VL: [x1, y1, x2, y2] on a 0-1000 grid, x first."""
    k = 1000 / NOVA_SIDE
    return [b.x1 * k, b.y1 * k, b.x2 * k, b.y2 * k]


def qwen25_box(b: Box) -> list[float]:
    """Qwen2.5-VL: absolute [x1, y1, x2, y2] in pixels of the resized 476 x 476 image."""
    k = QWEN25_SIDE / NOVA_SIDE
    return [b.x1 * k, b.y1 * k, b.x2 * k, b.y2 * k]


def pixel_box(b: Box) -> list[float]:
    """Our prompts: [x1, y1, x2, y2] in pixels of the image sent (the original)."""
    return [b.x1, b.y1, b.x2, b.y2]


COORDS: dict[str, Callable[[Box], list[float]]] = {  # model -> how it numbers a box
    "gemini-2.0-flash": gemini_box, "qwen2.5-vl-72b": qwen25_box, "qwen2-vl-72b": qwen2_box,
    "gpt-4o": pixel_box,
}

# (model name as users pass it, how it writes boxes)
FAMILIES: list[tuple[str, Callable]] = [
    ("gemini-2.0-flash", gemini),
    ("qwen2.5-vl-72b", qwen_json),
    ("qwen2.5-vl-72b", qwen_tokens),
    ("qwen2-vl-72b", qwen_tokens),
    ("qwen2-vl-72b", qwen_json),
    ("gpt-4o", pixel_list),
]
IDS = [f"{m}-{w.__name__}" for m, w in FAMILIES]


@pytest.fixture(scope="module")
def real_cases() -> list[Case]:
    from conftest import REAL_CSV, SHARED_METADATA

    if not REAL_CSV.exists():
        pytest.skip(f"real NOVA metadata not found at {REAL_CSV} (../shared is absent)")
    from nova_mlflow.data import load_dataset

    cases = load_dataset(SHARED_METADATA, check_images=False).cases
    assert len(cases) == 906 and sum(len(c.gold_boxes) for c in cases) == 1068
    assert {(c.image_width, c.image_height) for c in cases} == {(NOVA_SIDE, NOVA_SIDE)}
    return cases


def answer_texts(cases: list[Case], model: str, write: Callable, decimals: int | None) -> dict:
    coords = COORDS[model]
    return {c.filename: write([coords(b) for b in c.gold_boxes], decimals) for c in cases}


def test_conversions_of_this_file_on_a_known_box():
    """The expected texts rest on these conversions: one box checked by hand."""
    b = Box(x1=48.0, y1=96.0, x2=240.0, y2=480.0)
    assert gemini_box(b) == pytest.approx([200.0, 100.0, 1000.0, 500.0])
    assert qwen2_box(b) == pytest.approx([100.0, 200.0, 500.0, 1000.0])
    assert qwen25_box(b) == pytest.approx([47.6, 95.2, 238.0, 476.0])
    assert pixel_box(b) == [48.0, 96.0, 240.0, 480.0]


def _score(cases: list[Case], texts: dict, model: str) -> dict[str, float]:
    answers = {(n, Task.localization): Answer(filename=n, task=Task.localization, text=t)
               for n, t in texts.items()}
    ctx = ScoreContext(frame=frame_for(model), model=model)
    m = score(cases, answers, [Task.localization], ctx).metrics
    return {k.split("/", 1)[1]: v for k, v in m.items()}


def _assert_perfect(m: dict[str, float], fine_floor: float = 1.0) -> None:
    assert m["parse_failures"] == 0 and m["answered"] == 906 and m["missing"] == 0
    assert m["TP30"] == m["GT"] == 1068 and m["FP30"] == 0
    for k in ONE:
        floor = fine_floor if k in FINE else 1.0
        assert m[k] >= floor - 1e-12 and m[k] <= 1.0 + 1e-12, (k, m[k])


@pytest.mark.parametrize("model,write", FAMILIES, ids=IDS)
def test_gold_boxes_round_trip_every_frame(real_cases, model, write):
    """Floats with 6 decimals: the conversion itself must be exact, so everything is 1.0."""
    texts = answer_texts(real_cases, model, write, decimals=6)
    _assert_perfect(_score(real_cases, texts, model))


@pytest.mark.parametrize("model,write", FAMILIES, ids=IDS)
def test_integer_answers_as_models_emit_them(real_cases, model, write):
    """Models print integers. Rounding moves a corner by up to 0.5 unit of the frame (0.24 px
    on 0-1000, 0.5 px in pixel frames), which can pull a small box just under IoU 0.95,
    the strictest threshold of the 50:95 metrics; every other metric stays exactly 1.0."""
    texts = answer_texts(real_cases, model, write, decimals=None)
    _assert_perfect(_score(real_cases, texts, model), fine_floor=0.99)


def test_a_wrong_frame_does_not_score_perfectly(real_cases):
    """The round trip is not vacuous: Gemini's text read in Qwen2-VL's frame (x/y swapped)."""
    texts = answer_texts(real_cases, "gemini-2.0-flash", gemini, decimals=6)
    m = _score(real_cases, texts, "qwen2-vl-72b")
    assert m["mAP50"] < 0.8 and m["FP30"] > 0


def _write_outputs(path, texts: dict) -> str:
    path.write_text("".join(json.dumps({"filename": n, "task": "localization", "text": t}) + "\n"
                            for n, t in texts.items()))
    return str(path)


@pytest.mark.parametrize("model,write", [FAMILIES[0], FAMILIES[2]], ids=[IDS[0], IDS[2]])
def test_cli_evaluate_round_trip(tmp_path, real_metadata, placeholder_images, real_cases,
                                 model, write):
    """The user's path: `nova-mlflow evaluate --model <family>` on the real metadata."""
    texts = answer_texts(real_cases, model, write, decimals=6)
    res = CliRunner().invoke(main, ["evaluate", "--data", str(real_metadata), "--images",
                                    str(placeholder_images), "--model", model, "--outputs",
                                    _write_outputs(tmp_path / "answers.jsonl", texts), "--json"])
    assert res.exit_code == 0, res.stderr
    m = {k.split("/", 1)[1]: v for k, v in json.loads(res.stdout).items()}
    _assert_perfect(m)

    from conftest import run_store

    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    assert runs[0].data.params["frame"] == frame_for(model).value  # the frame is recorded

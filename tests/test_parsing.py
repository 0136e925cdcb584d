"""Raw answers -> predictions: tolerant, frame-aware, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nova_mlflow.parsing import parse_answer
from nova_mlflow.parsing.frames import frame_for, from_pixels, smart_resize, to_pixels
from nova_mlflow.schemas import Box, Frame, Task


def boxes(text, frame=Frame.pixel_xyxy):
    p = parse_answer(Task.localization, text, frame=frame)
    return None if not p.ok else [b.as_list() for b in p.prediction.boxes]


@pytest.mark.parametrize("text,expected", [
    ("[[10, 20, 30, 40]]", [[10, 20, 30, 40]]),
    ("```json\n[[10, 20, 30, 40], [50, 60, 70, 80]]\n```\nThese are the lesions.",
     [[10, 20, 30, 40], [50, 60, 70, 80]]),
    ('{"findings": [{"label": "mass", "bbox": [1, 2, 3, 4]}]}', [[1, 2, 3, 4]]),
    ("[[40, 30, 10, 20]]", [[10, 20, 40, 30]]),  # swapped corners normalised
    ("[[-5, 10, 600, 20]]", [[0, 10, 480, 20]]),  # clipped to the image
    ('[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6', [[1, 2, 3, 4]]),  # truncated JSON
    ("The lesion is at (100, 120, 150, 170).", [[100, 120, 150, 170]]),
    ("no target", []),
    ("No abnormality is seen.", []),
    ("", []),
    ("{\"findings\": []}", []),
])
def test_localization_shapes(text, expected):
    assert boxes(text) == expected


@pytest.mark.parametrize("text", ["I cannot tell.", "[nan, 1, 2, 3]", "[[1, 2, inf, 4]]"])
def test_localization_failures_are_counted_not_raised(text):
    p = parse_answer(Task.localization, text)
    assert not p.ok and p.error


def test_gemini_frame_is_declared_not_guessed():
    # Gemini box_2d is [ymin, xmin, ymax, xmax] on 0-1000
    got = boxes('```json\n[{"box_2d": [100, 200, 300, 400], "label": "lesion"}]\n```',
                Frame.gemini_yxyx_1000)
    assert got[0] == pytest.approx([96.0, 48.0, 192.0, 144.0])


def test_qwen_tokens_and_resized_frame():
    assert smart_resize(480, 480) == (476, 476)
    got = boxes("<|box_start|>(119,238),(238,357)<|box_end|>", Frame.qwen25_resized_xyxy)
    assert got[0] == pytest.approx([120.0, 240.0, 240.0, 360.0])


@pytest.mark.parametrize("frame", list(Frame))
def test_frames_round_trip(frame):
    box = Box(x1=12.5, y1=40.0, x2=300.0, y2=479.0)
    vals = from_pixels(box, frame, (480, 480), (480, 480))
    back = to_pixels(vals, frame, (480, 480), (480, 480))
    assert back.as_list() == pytest.approx(box.as_list())


def test_model_catalog():
    assert frame_for("gemini-2.0-flash") is Frame.gemini_yxyx_1000
    assert frame_for("gpt-4o") is Frame.pixel_xyxy
    assert frame_for("openai-compatible:qwen2.5-vl-72b") is Frame.qwen25_resized_xyxy
    assert frame_for("qwen2-vl-72b") is Frame.qwen2_xyxy_1000
    with pytest.raises(ValueError, match="--frame"):
        frame_for("mystery-vlm")
    assert frame_for("mystery-vlm", "gemini_yxyx_1000") is Frame.gemini_yxyx_1000


@pytest.mark.parametrize("text,expected", [
    ("1. Glioblastoma\n2. Metastases\n3. Primary CNS lymphoma\n4. Abscess\n5. Tumefactive MS",
     ["Glioblastoma", "Metastases", "Primary CNS lymphoma", "Abscess", "Tumefactive MS"]),
    ("1) **Multiple sclerosis** - typical periventricular lesions\n2) ADEM (less likely)",
     ["Multiple sclerosis", "ADEM"]),
    ('{"diagnoses": ["Meningioma", "Schwannoma"]}', ["Meningioma", "Schwannoma"]),
    ("The most likely diagnosis is cavernous malformation.", ["cavernous malformation"]),
    ("- a\n- b\n- c\n- d\n- e\n- f", ["a", "b", "c", "d", "e"]),
])
def test_diagnosis_lists(text, expected):
    p = parse_answer(Task.diagnosis, text)
    assert p.ok and p.prediction.diagnoses == expected


def test_caption_json_is_unwrapped():
    p = parse_answer(Task.captioning, '{"plane": "axial", "caption": "Axial FLAIR shows a lesion."}')
    assert p.prediction.text == "Axial FLAIR shows a lesion."
    assert not parse_answer(Task.captioning, "   ").ok


BOXY = st.text(alphabet='[]{}(),.:;"\' -+eE0123456789nainfNaN<|>_boxstartend\n`json', max_size=120)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), BOXY, st.none()), st.sampled_from(list(Task)),
       st.sampled_from(list(Frame)))
def test_parser_never_raises(text, task, frame):
    """parse_answer catches everything, so "no exception" proves nothing: what must never
    come back is its internal-error status ("parser error: ..."), which means a bug in a
    parser, not a bad answer."""
    p = parse_answer(task, text, frame=frame)
    assert p.ok != (p.error is not None)
    assert not (p.error or "").startswith("parser error"), (text, p.error)


def test_a_parser_bug_becomes_the_internal_error_status(monkeypatch):
    """What the property above rules out: a parser that raises ends as "parser error"."""
    from nova_mlflow import parsing

    def broken(text, **kwargs):
        raise IndexError("a bug")

    monkeypatch.setattr(parsing, "parse_boxes", broken)
    p = parse_answer(Task.localization, "[[1, 2, 3, 4]]")
    assert not p.ok and p.error.startswith("parser error")

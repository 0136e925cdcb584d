"""A corpus of odd and malformed localization answers, each with its expected reading.

Every entry is classified: OK with the exact boxes (pixel x1, y1, x2, y2 on 480 x 480), OK
with zero boxes ("no target" is a valid prediction), or FAIL (a counted parse failure).
Whatever the text, the parser returns; it never raises and never hits its own
"parser error" safety net (which would mean a bug, not a bad answer).
"""

from __future__ import annotations

import random

import pytest

from nova_mlflow.schemas import Frame
from nova_mlflow.parsing import parse_answer
from nova_mlflow.schemas import Task

FAIL = "FAIL"
B1 = [10.0, 20.0, 30.0, 40.0]
B2 = [50.0, 60.0, 70.0, 80.0]

# (id, answer text, expected): expected is a list of boxes, [] for "no target", or FAIL.
CORPUS: list[tuple[str, str, object]] = [
    # fenced JSON
    ("fence-json", "```json\n[[10, 20, 30, 40]]\n```", [B1]),
    ("fence-bare", "```\n[[10, 20, 30, 40]]\n```", [B1]),
    ("fence-python", "```python\n[[10, 20, 30, 40]]\n```", [B1]),
    ("fence-upper", "```JSON\n{\"bbox\": [10, 20, 30, 40]}\n```", [B1]),
    ("fence-prose-before", "Here is my answer:\n```json\n[[10, 20, 30, 40]]\n```", [B1]),
    ("fence-unclosed", "```json\n[[10, 20, 30, 40]]", [B1]),
    ("fence-first-block-wins",
     "```json\n[[10, 20, 30, 40]]\n```\nCorrected:\n```json\n[[50, 60, 70, 80]]\n```", [B1]),
    # bare lists
    ("bare-flat", "[10, 20, 30, 40]", [B1]),
    ("bare-nested", "[[10, 20, 30, 40]]", [B1]),
    ("bare-spaces", "[ [ 10 , 20 , 30 , 40 ] ]", [B1]),
    ("bare-floats", "[[10.5, 20.25, 30.75, 40.125]]", [[10.5, 20.25, 30.75, 40.125]]),
    ("bare-exponent", '{"boxes": [[1e1, 2e1, 3e1, 4e1]]}', [B1]),
    ("bare-zero-width-space", "\u200b[[10, 20, 30, 40]]", [B1]),
    ("python-literal-quotes", "[{'box_2d': [10, 20, 30, 40], 'label': 'mass'}]", [B1]),
    ("numeric-strings", '{"bbox_2d": ["10", "20", "30", "40"]}', [B1]),
    ("parenthesised-in-prose", "The lesion is at (10, 20, 30, 40).", [B1]),
    # several boxes
    ("several-nested", "[[10, 20, 30, 40], [50, 60, 70, 80]]", [B1, B2]),
    ("several-objects", '[{"bbox_2d": [10, 20, 30, 40]}, {"bbox_2d": [50, 60, 70, 80]}]', [B1, B2]),
    ("several-prose-lines", "Box 1: [10, 20, 30, 40]\nBox 2: [50, 60, 70, 80]", [B1, B2]),
    ("several-in-dict", '{"lesions": [{"bbox": [10, 20, 30, 40]}, {"bbox": [50, 60, 70, 80]}]}',
     [B1, B2]),
    ("several-repeated-kept", "[[10,20,30,40]][[10,20,30,40]]", [B1, B1]),  # emitted = scored
    ("several-one-short", "[[10, 20, 30, 40], [50, 60, 70]]", [B1]),
    # labels and extra keys
    ("label-key", '[{"label": "glioma", "bbox_2d": [10, 20, 30, 40]}]', [B1]),
    ("label-and-score", '[{"bbox_2d": [10, 20, 30, 40], "score": 0.9, "label": "x"}]', [B1]),
    ("confidence-key", '{"bbox_2d": [10, 20, 30, 40], "confidence": 0.9}', [B1]),
    ("corner-keys", '{"x1": 10, "y1": 20, "x2": 30, "y2": 40}', [B1]),
    ("minmax-keys", '{"xmin": 10, "ymin": 20, "xmax": 30, "ymax": 40}', [B1]),
    ("corner-keys-nested-strings", '{"bbox": {"x1": "10", "y1": 20, "x2": 30, "y2": 40}}', [B1]),
    # trailing prose
    ("trailing-prose", "[[10, 20, 30, 40]]\nThis is a ring-enhancing lesion.", [B1]),
    ("trailing-prose-fenced",
     "```json\n[[10, 20, 30, 40], [50, 60, 70, 80]]\n```\nThese are the lesions.", [B1, B2]),
    ("trailing-brackets-in-prose", "[[10, 20, 30, 40]] (see the [left] frontal lobe)", [B1]),
    ("trailing-no-target-phrase-ignored", "[[10, 20, 30, 40]] no target elsewhere", [B1]),
    # truncated JSON
    ("truncated-second-box", '[{"bbox_2d": [10, 20, 30, 40]}, {"bbox_2d": [50, 60', [B1]),
    ("truncated-outer-bracket", "[[10, 20, 30, 40], [50, 60, 70, 80]", [B1, B2]),
    ("truncated-qwen-token", "<|box_start|>(10,20),(30,40)", [B1]),
    ("truncated-inside-only-box", '{"bbox_2d": [10, 20, 30, ', FAIL),
    ("truncated-three-numbers", "[[10, 20, 30", FAIL),
    # Qwen token form
    ("qwen-tokens", ("<|object_ref_start|>lesion<|object_ref_end|><|box_start|>(10,20),(30,40)"
                     "<|box_end|>"), [B1]),
    ("qwen-tokens-two", ("<|box_start|>(10,20),(30,40)<|box_end|><|box_start|>(50,60),(70,80)"
                         "<|box_end|>"), [B1, B2]),
    # "no target" and empty answers: valid, zero boxes
    ("no-target", "no target", []),
    ("no-target-sentence", "There is no target in this image.", []),
    ("no-abnormality", "No abnormality is seen.", []),
    ("no-lesions", "No focal lesions.", []),
    ("normal-brain", "Normal brain MRI.", []),
    ("none", "none", []),
    ("none-dot", "None.", []),
    ("n/a", "N/A", []),
    ("empty-string", "", []),
    ("whitespace", "   \n ", []),
    ("empty-list", "[]", []),
    ("empty-nested", "[[]]", []),
    ("empty-object", "{}", []),
    ("json-null", "null", []),
    ("findings-empty", '{"findings": []}', []),
    ("findings-empty-with-comment", '{"findings": [], "comment": "Normal appearance"}', []),
    ("json-no-target-phrase", '{"answer": "no target"}', []),
    ("json-flag-false", '{"abnormality": false}', []),
    # swapped corners: normalised
    ("swapped-both", "[[30, 40, 10, 20]]", [B1]),
    ("swapped-x", "[[30, 20, 10, 40]]", [B1]),
    # outside the image: clipped (a box wholly outside becomes a zero-area box on the edge)
    ("outside-negative", "[[-5, 20, 30, 40]]", [[0.0, 20.0, 30.0, 40.0]]),
    ("outside-large", "[[10, 20, 600, 500]]", [[10.0, 20.0, 480.0, 480.0]]),
    ("outside-entirely", "[[500, 500, 600, 600]]", [[480.0, 480.0, 480.0, 480.0]]),
    # NaN / garbage / a finding without coordinates: counted parse failures
    ("nan-json", "[[NaN, 20, 30, 40]]", FAIL),
    ("nan-lower", "[nan, 20, 30, 40]", FAIL),
    ("inf", "[[10, 20, inf, 40]]", FAIL),
    ("neg-inf", "[[-inf, 20, 30, 40]]", FAIL),
    ("nan-string", '{"bbox_2d": ["nan", 20, 30, 40]}', FAIL),
    ("word-in-box", '[[10, 20, "thirty", 40]]', FAIL),
    ("bool-in-box", "[[true, 20, 30, 40]]", FAIL),
    ("five-numbers", "[[10, 20, 30, 40, 50]]", FAIL),
    ("semicolons", "[[10;20;30;40]]", FAIL),
    ("space-separated", "[[10 20 30 40]]", FAIL),
    ("two-points-prose", "(10, 20), (30, 40)", FAIL),
    ("keyword-prose", "The lesion is at x1=10, y1=20, x2=30, y2=40.", FAIL),
    ("point-only", '[{"point_2d": [10, 20], "label": "lesion"}]', FAIL),
    ("xywh-dict", '{"x": 10, "y": 20, "width": 20, "height": 20}', FAIL),  # ambiguous frame
    ("qwen-vl-v1-tags", "<ref>lesion</ref><box>(10,20),(30,40)</box>", FAIL),
    ("prose-only", "I see a lesion but cannot give coordinates.", FAIL),
    ("label-without-box", '{"label": "lesion"}', FAIL),
    ("labels-without-boxes", '[{"label": "lesion in the left frontal lobe"}]', FAIL),
    ("json-sentence", '{"answer": "There is a mass in the left lobe."}', FAIL),
    ("json-string", '"lesion"', FAIL),
    ("json-true", "true", FAIL),
    ("json-number", "42", FAIL),
    ("garbage", "asdf qwerty ###", FAIL),
    ("deep-brackets", "[" * 5000, FAIL),
    ("deep-objects", '{"a":' * 3000, FAIL),
]


def _read(text: str, frame: Frame = Frame.pixel_xyxy):
    p = parse_answer(Task.localization, text, frame=frame)
    return p, (FAIL if not p.ok else [b.as_list() for b in p.prediction.boxes])


def test_corpus_is_large_and_ids_unique():
    assert len(CORPUS) >= 50
    assert len({c[0] for c in CORPUS}) == len(CORPUS)
    kinds = {("fail" if e == FAIL else "empty" if e == [] else "boxes") for _, _, e in CORPUS}
    assert kinds == {"fail", "empty", "boxes"}


@pytest.mark.parametrize("text,expected", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_corpus(text, expected):
    p, got = _read(text)
    assert got == expected
    if expected == FAIL:
        assert p.error and not p.error.startswith("parser error"), p.error  # counted, not a bug
    else:
        assert p.error is None


def test_failures_are_counted_by_scoring():
    """Parse failures land in `parse_failures`, "no target" in `answered` with zero boxes."""
    from nova_mlflow.schemas import Answer, Box, Case
    from nova_mlflow.scoring import ScoreContext, score

    texts = {"a.png": "[[10, 20, 30, 40]]", "b.png": "no target", "c.png": "[[NaN, 1, 2, 3]]",
             "d.png": '{"label": "lesion"}'}
    cases = [Case(filename=n, case_id=n[0], scan_id=1, image_path=n, final_diagnosis="x",
                  gold_boxes=[Box(x1=10, y1=20, x2=30, y2=40)]) for n in texts]
    answers = {(n, Task.localization): Answer(filename=n, task=Task.localization, text=t)
               for n, t in texts.items()}
    m = score(cases, answers, [Task.localization], ScoreContext()).metrics
    assert m["localization/parse_failures"] == 2 and m["localization/answered"] == 2
    assert m["localization/TP30"] == 1 and m["localization/FP30"] == 0
    assert m["localization/mAP30"] == pytest.approx(0.25)  # one perfect image out of four


def test_gemini_frame_with_label_and_fence():
    text = '```json\n[{"box_2d": [250, 125, 500, 375], "label": "lesion"}]\n```'
    _, got = _read(text, Frame.gemini_yxyx_1000)
    assert got == [pytest.approx([60.0, 120.0, 180.0, 240.0])]


REALISTIC = [
    ('```json\n[\n  {"box_2d": [212, 530, 388, 701], "label": "ring-enhancing lesion"},\n'
     '  {"box_2d": [600, 100, 700, 180], "label": "edema"}\n]\n```\nBoth lesions are left-sided.'),
    ("<|object_ref_start|>lesion<|object_ref_end|><|box_start|>(119,238),(238,357)<|box_end|>"
     "<|box_start|>(300,300),(350,360)<|box_end|>"),
    '[{"bbox_2d": [120, 240, 240, 360], "label": "mass"}, {"bbox_2d": [10, 20, 30, 40]}]',
    "No target. The study appears normal.",
]


@pytest.mark.parametrize("text", REALISTIC)
def test_every_truncation_returns_without_internal_error(text):
    """Answers cut at any character (max_tokens) give boxes or a counted failure, no bug."""
    for frame in Frame:
        for n in range(len(text) + 1):
            p = parse_answer(Task.localization, text[:n], frame=frame)
            assert p.ok or (p.error and not p.error.startswith("parser error")), (n, p.error)
            if p.ok:
                for b in p.prediction.boxes:
                    assert 0 <= b.x1 <= b.x2 <= 480 and 0 <= b.y1 <= b.y2 <= 480


def test_random_mutations_never_raise():
    rng = random.Random(20240611)
    alphabet = "[]{}(),.:;\"' -+eE0123456789nainfNaN<|>_boxstartend\n`json"
    seeds = [c[1] for c in CORPUS if len(c[1]) < 200] + REALISTIC
    for _ in range(3000):
        s = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            i = rng.randint(0, len(s))
            op = rng.random()
            if op < 0.4:
                s.insert(i, rng.choice(alphabet))
            elif op < 0.8 and s:
                del s[min(i, len(s) - 1)]
            elif s:
                s[min(i, len(s) - 1)] = rng.choice(alphabet)
        p = parse_answer(Task.localization, "".join(s))
        assert p.ok or (p.error and not p.error.startswith("parser error")), ("".join(s), p.error)

"""Outputs files (`evaluate --outputs`, `replay:`): a corpus of bad lines, each exit 2 naming
the file, the line and the fields found; never a crash, never silently scored.

Every line needs `filename`, `task` and `text` (a string, or null for "no answer", counted as
missing). A filename not in the dataset and two different answers to one (filename, task)
are errors too. An empty string stays an answer ("no lesion"); extra fields are kept.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_store

from nova_mlflow.cli import main
from nova_mlflow.data.answers import read_answers
from nova_mlflow.errors import InputError
from nova_mlflow.schemas import Task

F = "case9001_001.png"  # in the demo set
GOOD = json.dumps({"filename": F, "task": "diagnosis", "text": "1. Glioblastoma"})
KNOWN = {F, "case9001_002.png"}


def _line(**fields) -> str:
    return json.dumps(fields)


# (id, second line of the file, field named or None, words the message must hold)
CORPUS: list[tuple[str, str, str | None, list[str]]] = [
    ("text-misspelled", _line(filename=F, task="localization", txt="[[1, 2, 3, 4]]"), "text",
     ["missing", "fields found: filename, task, txt"]),
    ("text-capitalised", _line(filename=F, task="localization", Text="x"), "text",
     ["fields found: Text, filename, task"]),
    ("text-absent", _line(filename=F, task="captioning"), "text",
     ["missing", "fields found: filename, task"]),
    ("text-under-answer", _line(filename=F, task="captioning", answer="Axial FLAIR."), "text",
     ["fields found: answer, filename, task"]),
    ("text-number", _line(filename=F, task="diagnosis", text=42), "text", ["not a number"]),
    ("text-list", _line(filename=F, task="localization", text=[[1, 2, 3, 4]]), "text",
     ["not a list"]),
    ("text-object", _line(filename=F, task="diagnosis", text={"dx": "x"}), "text",
     ["not an object"]),
    ("text-bool", _line(filename=F, task="diagnosis", text=False), "text", ["true/false"]),
    ("filename-absent", _line(task="diagnosis", text="x"), "filename",
     ["missing", "fields found: task, text"]),
    ("filename-misspelled", _line(file=F, task="diagnosis", text="x"), "filename",
     ["fields found: file, task, text"]),
    ("filename-null", _line(filename=None, task="diagnosis", text="x"), "filename", ["null"]),
    ("filename-number", _line(filename=9001, task="diagnosis", text="x"), "filename",
     ["a number"]),
    ("filename-empty", _line(filename="", task="diagnosis", text="x"), "filename", ["empty"]),
    ("filename-unknown", _line(filename="nope.png", task="diagnosis", text="x"), "filename",
     ["not in the dataset"]),
    ("filename-path", _line(filename="../case9001_001.png", task="diagnosis", text="x"),
     "filename", ["not in the dataset"]),
    ("task-absent", _line(filename=F, text="x"), "task", ["missing"]),
    ("task-unknown", _line(filename=F, task="segmentation", text="x"), "task",
     ["localization", "fields found: filename, task, text"]),
    ("task-null", _line(filename=F, task=None, text="x"), "task", ["null"]),
    ("task-number", _line(filename=F, task=2, text="x"), "task", ["a number"]),
    ("task-capitalised-key", _line(filename=F, Task="diagnosis", text="x"), "task",
     ["fields found: Task, filename, text"]),
    ("status-unknown", _line(filename=F, task="diagnosis", text="x", status="ok"), "status",
     ["fields found: filename, status, task, text"]),
    ("tokens-not-number", _line(filename=F, task="diagnosis", text="x", input_tokens="many"),
     "input_tokens", ["fields found"]),
    ("schema-newer", _line(schema_version=99, filename=F, task="diagnosis", text="x"),
     "schema_version", ["newer"]),
    ("schema-not-int", _line(schema_version="two", filename=F, task="diagnosis", text="x"),
     "schema_version", ["positive integer"]),
    ("second-different-answer", _line(filename=F, task="diagnosis", text="1. Meningioma"),
     "text", ["second, different answer", "line 1"]),
    ("second-answer-null", _line(filename=F, task="diagnosis", text=None), "text",
     ["second, different answer"]),
    ("not-json", "filename=case9001_001.png task=diagnosis", None, ["not JSON"]),
    ("truncated-json", GOOD[:-9], None, ["not JSON"]),
    ("json-list", json.dumps([F, "diagnosis", "x"]), None, ["not a list"]),
    ("json-string", json.dumps("1. Glioblastoma"), None, ["JSON object"]),
    ("json-null", "null", None, ["not null"]),
    ("json-number", "42", None, ["not a number"]),
    ("deep-nesting", "[" * 100_000 + "]" * 100_000, None, ["not JSON"]),
    ("two-objects-one-line", GOOD + GOOD, None, ["not JSON"]),
]


@pytest.fixture
def write(tmp_path):
    def write(*lines: str, name: str = "outputs.jsonl") -> object:
        path = tmp_path / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path
    return write


def test_corpus_is_large_and_ids_unique():
    assert len(CORPUS) >= 30
    assert len({c[0] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("line,field,words", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_bad_line_is_one_error_naming_file_line_and_fields(write, line, field, words):
    path = write(GOOD, line, name="model_outputs.jsonl")
    with pytest.raises(InputError) as info:
        read_answers(path, KNOWN)
    err = str(info.value)
    assert "\n" not in err
    assert err.startswith(f"{path}: line 2: "), err
    if field:
        assert f"field '{field}'" in err, err
    for w in words:
        assert w in err, (w, err)


def test_random_mutations_never_crash(write):
    """Mutated lines are read or refused with an InputError; nothing else ever escapes."""
    rng = random.Random(20261205)
    alphabet = '{}[]":,. nulltruefalse0123456789textaskfilenam\\'
    seeds = [GOOD, _line(filename=F, task="localization", text="[[1, 2, 3, 4]]"),
             _line(filename=F, task="captioning", text=None, extra={"a": [1]})]
    outcomes = {"read": 0, "refused": 0}
    for i in range(1500):
        s = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 5)):
            j = rng.randint(0, len(s))
            op = rng.random()
            if op < 0.4:
                s.insert(j, rng.choice(alphabet))
            elif op < 0.8 and s:
                del s[min(j, len(s) - 1)]
            elif s:
                s[min(j, len(s) - 1)] = rng.choice(alphabet)
        path = write("".join(s).replace("\n", " "), name=f"m{i % 7}.jsonl")
        try:
            read_answers(path, KNOWN)
            outcomes["read"] += 1
        except InputError as exc:
            assert "\n" not in str(exc) and "line 1" in str(exc) or "no answers" in str(exc)
            outcomes["refused"] += 1
    assert outcomes["read"] > 50 and outcomes["refused"] > 500


def test_what_stays_valid(write):
    path = write(
        _line(filename=F, task="localization", text=""),  # an empty answer: "no lesion"
        _line(filename=F, task="captioning", text=None),  # "no answer"
        _line(filename=F, task="diagnosis", text="1. Glioma", rater="dr-b", score=0.9),
        _line(filename=F, task="diagnosis", text="1. Glioma", rater="dr-b", score=0.9),  # again
        "",  # blank lines are skipped (and still counted for line numbers)
        _line(filename="case9001_002.png", task="diagnosis", status="api_error",
              error="HTTP 500"),  # what nova-mlflow records for a failed call
    )
    answers = read_answers(path, KNOWN)
    assert answers[(F, Task.localization)].text == ""
    assert answers[(F, Task.captioning)].text is None
    dx = answers[(F, Task.diagnosis)]
    assert dx.model_extra == {"rater": "dr-b", "score": 0.9}  # extra fields kept
    assert answers[("case9001_002.png", Task.diagnosis)].status == "api_error"
    bom = write("\ufeff" + GOOD, name="bom.jsonl")  # saved by an editor that adds a BOM
    assert read_answers(bom, KNOWN)[(F, Task.diagnosis)].text == "1. Glioblastoma"


def _evaluate(demo_dir, path, *extra: str):
    return CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(path),
                                     "--model", "gpt-4o", "--json", *extra])


def test_misspelled_text_is_exit_2_not_an_empty_answer(tmp_path, demo_dir, write):
    """The reproduction: "txt" was read as an answer with no boxes, exit 0."""
    path = write(_line(filename=F, task="localization", txt="[[100, 100, 150, 150]]"))
    res = _evaluate(demo_dir, path)
    assert res.exit_code == 2, res.stdout
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow: error:")]
    assert str(path) in line and "line 1" in line and "field 'text'" in line
    assert "fields found: filename, task, txt" in line
    client = run_store(tmp_path)
    assert not any(client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_null_is_missing_empty_is_answered_extras_reach_the_run(tmp_path, demo_dir, write):
    names = sorted(KNOWN)
    path = write(_line(filename=names[0], task="localization", text="", rater="dr-a"),
                 _line(filename=names[1], task="localization", text=None, rater="dr-a"))
    res = _evaluate(demo_dir, path)
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["localization/answered"] == 1 and m["localization/parse_failures"] == 0
    assert m["localization/missing"] == m["localization/n_cases"] - 1  # null = no answer
    client = run_store(tmp_path)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    got = client.download_artifacts(run.info.run_id, "answers/answers.jsonl", str(tmp_path))
    rows = [json.loads(x) for x in Path(got).read_text().splitlines()]
    assert [(r["text"], r["rater"]) for r in rows] == [("", "dr-a"), (None, "dr-a")]
    again = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--from-run",
                                      run.info.run_id, "--json"])  # the artifact reads back
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["localization/missing"] == m["localization/missing"]


@pytest.mark.parametrize("line,words", [
    (_line(filename=F, task="diagnosis", txt="1. Glioma"), ["field 'text'", "txt"]),
    (_line(filename="case0001_001.png", task="diagnosis", text="1. Glioma"),
     ["field 'filename'", "not in the dataset"]),
])
def test_replay_reads_under_the_same_rules(tmp_path, demo_dir, write, line, words):
    path = write(GOOD, line, name="replayed.jsonl")
    res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--model", f"replay:{path}",
                                    "--frame", "pixel_xyxy", "--tasks", "diagnosis",
                                    "--no-progress"])
    assert res.exit_code == 2, res.stderr
    (err,) = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow: error:")]
    assert "replayed.jsonl: line 2" in err and all(w in err for w in words), err


def test_replayed_failures_stay_failures(tmp_path, demo_dir, write):
    names = sorted(KNOWN)
    path = write(_line(filename=names[0], task="diagnosis", text="1. Glioblastoma"),
                 _line(filename=names[1], task="diagnosis", status="api_error", error="HTTP 500"))
    res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--model", f"replay:{path}",
                                    "--frame", "pixel_xyxy", "--tasks", "diagnosis", "--limit",
                                    "3", "--no-progress", "--no-traces"])
    assert res.exit_code == 3  # as the recorded run: a call failed
    client = run_store(tmp_path)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    m = run.data.metrics
    assert (m["diagnosis/answered"], m["diagnosis/api_errors"], m["diagnosis/missing"]) == (1, 1, 1)

"""The LLM judge through the real openai SDK against the fake server: cached, counted apart."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.judge import read_verdict
from nova_mlflow.testing.fake_server import FakeModelServer

from conftest import run_store

KEY = "sk-test-judge-0a1b2c3d4e"


@pytest.fixture
def judge_server(tmp_path, monkeypatch):
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "cache"))
    srv = FakeModelServer(api_key=KEY).start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
    yield srv
    srv.stop()


def _answers(tmp_path, demo_dir):
    from nova_mlflow.data import load_dataset

    cases = sorted(load_dataset(demo_dir).cases, key=lambda c: c.filename)[:10]
    rows = []
    for i, c in enumerate(cases):
        if i < 4:  # a more specific wording of the truth at rank 2: the fake judge says yes
            preds = ["Meningitis", f"{c.final_diagnosis} of the brain"]
        else:  # a different disease only
            preds = ["Wilson disease", "Fahr disease"]
        rows.append({"filename": c.filename, "task": "diagnosis",
                     "text": "\n".join(f"{k}. {d}" for k, d in enumerate(preds, start=1))})
    f = tmp_path / "dx.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f, cases


def _evaluate(demo_dir, outputs):
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(outputs),
                                    "--judge", "gpt-4o", "--json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_judge_verdicts_are_cached_and_counted_apart(tmp_path, demo_dir, judge_server):
    outputs, cases = _answers(tmp_path, demo_dir)
    m1 = _evaluate(demo_dir, outputs)
    calls = judge_server.count(200)
    assert calls > 0 and m1["diagnosis/judge_calls"] == calls
    assert m1["diagnosis/top1"] == 0.0
    assert m1["diagnosis/top5"] == pytest.approx(4 / len(load_cases(demo_dir)))
    assert m1["diagnosis/judge_input_tokens"] > 0 and m1["diagnosis/judge_cost_usd"] > 0
    m2 = _evaluate(demo_dir, outputs)  # re-scoring the same answers
    assert judge_server.count(200) == calls  # zero judge calls the second time
    assert m2["diagnosis/judge_calls"] == 0 and m2["diagnosis/judge_cache_hits"] == calls
    assert m2["diagnosis/top5"] == m1["diagnosis/top5"]
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    p = runs[0].data.params
    assert p["judge"] == "gpt-4o" and p["judge_prompt.version"] == "v1"
    assert p["judge_prompt.uri"].startswith("prompts:/nova-judge/")
    table = json.loads(open(client.download_artifacts(runs[0].info.run_id,
                                                      "tables/diagnosis_cases.json", str(tmp_path))).read())
    cols = table["columns"]
    reasons = [row[cols.index(c)] for row in table["data"] for c in cols if "reason" in c]
    assert any("word sets nest" in str(r) for r in reasons)  # the judge's own reason is kept


def load_cases(demo_dir):
    from nova_mlflow.data import load_dataset

    return load_dataset(demo_dir).cases


def test_judge_needs_its_key_before_any_work(tmp_path, demo_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    outputs, _ = _answers(tmp_path, demo_dir)
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(outputs),
                                    "--judge", "gpt-4o"])
    assert res.exit_code == 2 and "OPENAI_API_KEY" in res.stderr


@pytest.mark.parametrize("text,expected", [
    ('{"verdict": "yes", "reason": "synonym"}', (True, "synonym")),
    ('```json\n{"verdict": "no", "reason": "different disease"}\n```', (False, "different disease")),
    ('{"match": false}', (False, "")),
    ("Yes - same disease", (True, "same disease")),
    ("verdict: no", (False, "")),
    ("I am not sure", None),
    ("", None),
])
def test_read_verdict(text, expected):
    assert read_verdict(text) == expected

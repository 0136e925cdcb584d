"""The response cache and the judge's verdict cache are keyed by endpoint.

Two servers serving one model name (two quantisations of one model) never share answers;
entries written before endpoints were part of the key are reused only at the provider's
default endpoint; `nova-mlflow cache stats / prune` show and trim what is kept.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from nova_mlflow.memo import FILE as MEMO_FILE
from nova_mlflow.memo import ScoreMemo
from click.testing import CliRunner
from conftest import run_store

from nova_mlflow.cli import main
from nova_mlflow.testing.fake_server import FakeModelServer, guess_task

KEY = "sk-test-cache-4e8f2a"
QWEN = "openai-compatible:qwen2.5-vl-72b"
#: the tables as nova-mlflow wrote them before endpoints were recorded (schema 1)
SCHEMA_1 = """
CREATE TABLE responses (key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL,
    text TEXT NOT NULL, refused INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER,
    created REAL NOT NULL);
CREATE TABLE verdicts (key TEXT PRIMARY KEY, match INTEGER NOT NULL, reason TEXT NOT NULL,
    created REAL NOT NULL);
"""


def _script(diagnosis: str):
    def answer(route: str, model: str, prompt: str, image: bytes | None) -> str:
        task = guess_task(prompt)
        if task == "judge":
            return json.dumps({"verdict": diagnosis == "yes", "reason": f"server says {diagnosis}"})
        return f"1. {diagnosis}\n2. Metastases"
    return answer


@pytest.fixture
def two_servers(monkeypatch):
    """Two OpenAI-route servers that answer differently (two quantisations of one model)."""
    for var in ("OPENAI_BASE_URL", "OPENAI_COMPATIBLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeModelServer(script=_script("Glioblastoma")) as a, \
            FakeModelServer(script=_script("Meningioma")) as b:
        yield a, b


def _run(demo_dir, *args: str) -> dict:
    res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--tasks", "diagnosis",
                                    "--limit", "3", "--no-progress", "--no-traces", "--json",
                                    "--retry-base", "0.01", *args])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _answers_of_last_run(tmp_path) -> set[str]:
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    last = max(runs, key=lambda r: r.info.start_time)
    path = client.download_artifacts(last.info.run_id, "answers/answers.jsonl",
                                     str(tmp_path / last.info.run_id))
    return {json.loads(line)["text"].splitlines()[0] for line in open(path)}


def test_two_servers_with_one_model_name_do_not_share_answers(tmp_path, demo_dir, two_servers):
    a, b = two_servers
    m_a = _run(demo_dir, "--model", QWEN, "--base-url", a.openai_base_url)
    assert a.count(200) == 3 and _answers_of_last_run(tmp_path) == {"1. Glioblastoma"}
    m_b = _run(demo_dir, "--model", QWEN, "--base-url", b.openai_base_url)
    assert b.count(200) == 3, "the second server was never asked: it got the first's answers"
    assert m_b["run/cache_hits"] == 0 and _answers_of_last_run(tmp_path) == {"1. Meningioma"}
    again = _run(demo_dir, "--model", QWEN, "--base-url", a.openai_base_url + "/")
    assert a.count(200) == 3 and again["run/cache_hits"] == 3  # same endpoint: cached
    assert again["diagnosis/top1"] == m_a["diagnosis/top1"]


def test_judge_verdicts_are_keyed_by_endpoint(two_servers):
    from nova_mlflow.judge import JudgeMatcher

    a, b = two_servers
    pair = ("Glioma", "Glioblastoma")  # not equal after normalisation: the judge is asked
    first = JudgeMatcher("gpt-4o", base_url=a.openai_base_url)
    second = JudgeMatcher("gpt-4o", base_url=b.openai_base_url)
    try:
        v_a, v_b = first.match(*pair), second.match(*pair)
        assert (a.count(200), b.count(200)) == (1, 1)
        assert (v_a.match, v_b.match) == (False, False) and "Glioblastoma" in v_a.reason
        assert "Meningioma" in v_b.reason  # each server's own verdict, not the other's
        assert first.match(*pair) == v_a and a.count(200) == 1  # cached per endpoint
    finally:
        first.close()
        second.close()


def _seed_schema_1(path, rows: list[tuple], verdicts: list[tuple] = ()) -> None:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.executemany("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO verdicts VALUES (?, ?, ?, ?)", verdicts)
    db.commit()
    db.close()


def test_legacy_key_is_the_key_older_versions_wrote():
    """Pinned: the digest nova_mlflow computed for this request before endpoints were keyed."""
    from nova_mlflow.calls.store import legacy_request_key, request_key
    from nova_mlflow.providers.base import Request
    from nova_mlflow.schemas import GenerationSettings, Task

    r = Request(task=Task.localization, filename="a.png", case_id="a", prompt="Find the lesion.",
                prompt_version="v1", image_png=b"\x89PNG fake", settings=GenerationSettings())
    old = "edb7c095fa2ba7715d02fdf65572e1656b0f68e57fed5b7782a5fae1860f59aa"
    assert legacy_request_key("openai", "gpt-4o", r) == old
    assert request_key("openai", "gpt-4o", r, "https://api.openai.com/v1") != old


def _old_entries(demo_dir, text: str) -> list[tuple]:
    """Schema-1 rows answering the first 3 diagnosis requests of `run --model gpt-4o`."""
    from nova_mlflow.calls.jobs import Job
    from nova_mlflow.calls.store import legacy_request_key
    from nova_mlflow.data import load_dataset
    from nova_mlflow.pipeline.run import make_request
    from nova_mlflow.prompts import load_prompt
    from nova_mlflow.schemas import GenerationSettings, Task

    prompts = {Task.diagnosis: load_prompt(Task.diagnosis, "v1")}
    cases = load_dataset(demo_dir).limited(3).cases
    reqs = [make_request(Job(c, Task.diagnosis), prompts, GenerationSettings()) for c in cases]
    return [(legacy_request_key("openai", "gpt-4o", r), "openai", "gpt-4o", text, 0, 10, 5,
             time.time()) for r in reqs]


def test_old_entries_are_reused_only_at_the_default_endpoint(tmp_path, demo_dir, two_servers):
    a, _ = two_servers
    cache = tmp_path / "nova_cache"
    _seed_schema_1(cache / "responses.sqlite", _old_entries(demo_dir, "1. Astrocytoma"))
    # at the vendor's own endpoint the old answers are used: no call is made (none could be)
    m = _run(demo_dir, "--model", "gpt-4o", "--max-retries", "0", "--timeout", "5")
    assert m["run/cache_hits"] == 3 and m["run/requests"] == 0
    assert _answers_of_last_run(tmp_path) == {"1. Astrocytoma"}
    # at any other endpoint they are not: that server is asked
    m = _run(demo_dir, "--model", "gpt-4o", "--base-url", a.openai_base_url)
    assert m["run/cache_hits"] == 0 and a.count(200) == 3
    assert _answers_of_last_run(tmp_path) == {"1. Glioblastoma"}


def test_old_verdicts_are_reused_only_at_the_default_endpoint(tmp_path, two_servers):
    import hashlib

    from nova_mlflow.judge import JudgeMatcher

    a, _ = two_servers
    probe = JudgeMatcher("gpt-4o", use_cache=False)
    old_key = hashlib.sha256(json.dumps(  # the verdict key before endpoints: no endpoint in it
        ["gpt-4o", probe.prompt.version, probe.prompt.sha256, "glioma", "glioblastoma"]
    ).encode()).hexdigest()
    _seed_schema_1(tmp_path / "nova_cache" / "responses.sqlite", [],
                   [(old_key, 1, "an old verdict", time.time())])
    at_vendor = JudgeMatcher("gpt-4o")
    elsewhere = JudgeMatcher("gpt-4o", base_url=a.openai_base_url)
    try:
        assert at_vendor.match("Glioma", "Glioblastoma").reason == "an old verdict"
        assert at_vendor.usage.cache_hits == 1
        assert elsewhere.match("Glioma", "Glioblastoma").reason != "an old verdict"
        assert a.count(200) == 1
    finally:
        at_vendor.close()
        elsewhere.close()


def _cli(*args: str):
    res = CliRunner().invoke(main, ["cache", *args])
    assert res.exit_code == 0, res.stderr
    return res


def test_stats_and_prune(tmp_path, demo_dir, two_servers):
    a, b = two_servers
    db = tmp_path / "nova_cache" / "responses.sqlite"
    _seed_schema_1(db, _old_entries(demo_dir, "1. Astrocytoma"))
    _run(demo_dir, "--model", QWEN, "--base-url", a.openai_base_url)
    _run(demo_dir, "--model", QWEN, "--base-url", b.openai_base_url)
    ScoreMemo(tmp_path / "nova_cache" / MEMO_FILE).put({"a": 0.1, "b": 0.2, "c": 0.3})
    stats = json.loads(_cli("stats", "--json").stdout)
    rows = {(r["kind"], r["provider"], r["model"], r["endpoint"]): r["entries"]
            for r in stats["rows"]}
    assert rows == {("responses", "openai-compatible", QWEN, a.openai_base_url): 3,
                    ("responses", "openai-compatible", QWEN, b.openai_base_url): 3,
                    ("responses", "openai", "gpt-4o", "(not recorded)"): 3}
    assert stats["scores"]["entries"] == 3 and stats["scores"]["bytes"] > 0
    text = _cli("stats").stdout
    assert a.openai_base_url in text and b.openai_base_url in text and "9 entries" in text
    assert f"scores.sqlite ({stats['scores']['bytes'] / 1e3:.0f} kB): 3 METEOR/BLEU" in text

    with sqlite3.connect(db) as con:  # age the first server's answers by ten days
        con.execute("UPDATE responses SET created = created - 10 * 86400 WHERE endpoint = ?",
                    (a.openai_base_url,))
    memo = ScoreMemo(tmp_path / "nova_cache" / MEMO_FILE)  # METEOR values: one old, one new
    memo.prune(0)  # drops the three seeded above
    memo.put({"old": 0.5, "new": 0.25})
    with sqlite3.connect(tmp_path / "nova_cache" / MEMO_FILE) as con:
        con.execute("UPDATE memo SET created = created - 10 * 86400 WHERE key = 'old'")
    out = _cli("prune", "--older-than", "5")
    assert "removed 3 answer(s), 0 verdict(s) and 1 memoised METEOR/BLEU value(s)" in out.stdout
    left = {r["endpoint"] for r in json.loads(_cli("stats", "--json").stdout)["rows"]}
    assert left == {b.openai_base_url, "(not recorded)"}
    assert json.loads(_cli("prune", "--older-than", "0", "--json").stdout)["removed"] == \
        {"responses": 6, "verdicts": 0, "scores": 1}
    assert len(memo) == 0
    assert json.loads(_cli("stats", "--json").stdout)["scores"]["entries"] == 0
    assert "no METEOR/BLEU values" in _cli("stats").stdout
    bad = CliRunner().invoke(main, ["cache", "prune", "--older-than", "-1"])
    assert bad.exit_code == 2
    assert CliRunner().invoke(main, ["cache", "prune"]).exit_code == 2  # DAYS is required


def test_stats_of_a_fresh_machine_and_of_a_broken_file(tmp_path):
    assert "empty" in _cli("stats").stdout
    (tmp_path / "nova_cache" / MEMO_FILE).write_bytes(b"not a memo either" * 100)
    res = _cli("stats")  # an unusable score memo is a warning, as when scoring
    assert "no METEOR/BLEU values" in res.stdout and "not usable" in res.stderr
    (tmp_path / "nova_cache" / "responses.sqlite").write_bytes(b"this is not sqlite" * 100)
    res = CliRunner().invoke(main, ["cache", "stats"])
    assert res.exit_code == 2 and "responses.sqlite" in res.stderr and "not a response cache" \
        in res.stderr


def test_each_test_has_a_cache_of_its_own(tmp_path, demo_dir):
    """Results never depend on test order or the xdist worker: no answers, verdicts or run
    directories are shared; only the demo set (read-only) is, linked in."""
    import os
    from pathlib import Path

    from nova_mlflow.data import load_dataset
    from nova_mlflow.paths import cache_dir

    cache = Path(os.environ["NOVA_MLFLOW_CACHE"])
    assert cache == cache_dir() and cache.is_relative_to(tmp_path)
    assert sorted(p.name for p in cache.iterdir()) == ["demo-v1"]  # nothing cached yet
    assert load_dataset("demo").digest == load_dataset(demo_dir).digest  # found, not rebuilt
    assert (cache / "demo-v1").resolve() == demo_dir.resolve()


def test_requests_carry_the_dataset_hash_of_the_image_they_send(demo_dir):
    """make_request takes each image's sha256 from the dataset (hashed once at load) instead
    of hashing the PNG again per call: it must be the hash of the very bytes sent, or cache
    keys would stop matching; without the dataset's hashes the request hashes the bytes."""
    import hashlib

    from nova_mlflow.calls.jobs import Job
    from nova_mlflow.data import load_dataset
    from nova_mlflow.pipeline.run import make_request
    from nova_mlflow.prompts import load_prompt
    from nova_mlflow.schemas import GenerationSettings, Task

    ds = load_dataset(demo_dir)
    prompts = {t: load_prompt(t) for t in Task}
    assert len(ds.image_hashes) == len(ds.cases)
    for case in ds.cases[:12]:
        for task in (Task.localization, Task.captioning):
            given = make_request(Job(case, task), prompts, GenerationSettings(), ds.image_hashes)
            hashed = make_request(Job(case, task), prompts, GenerationSettings())
            assert given.image_sha256 == hashlib.sha256(given.image_png).hexdigest()
            assert hashed.image_sha256 == given.image_sha256
        text = make_request(Job(case, Task.diagnosis), prompts, GenerationSettings(), ds.image_hashes)
        assert text.image_png is None and text.image_sha256 is None
